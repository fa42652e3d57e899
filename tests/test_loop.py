"""The training loop without Spark or a process group."""

import pytest
import torch

from tokenlake.training.data import steps_per_epoch, to_model_inputs
from tokenlake.training.loop import evaluate, fit_epoch, lr_factor, make_optimizer, metrics, param_groups, precision
from tokenlake.training.model import build_classifier, train_top_layers


def test_lr_warms_up_linearly_then_decays_on_a_cosine_to_zero():
    assert [round(lr_factor(s, 100, 4), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 100, 4) == pytest.approx(1.0)
    assert lr_factor(52, 100, 4) == pytest.approx(0.5)
    assert lr_factor(100, 100, 4) == pytest.approx(0.0)
    assert lr_factor(0, 10, 0) == pytest.approx(1.0)


def test_no_weight_decay_on_biases_and_norms():
    model = build_classifier("tiny", vocab_size=50, labels=["a", "b"], max_len=16)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim == 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_top_layers_training_freezes_the_embeddings_and_the_layers_below():
    model = build_classifier("small", vocab_size=50, labels=["a", "b"], max_len=16)  # 4 layers
    train_top_layers(model, 1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("bert.encoder.layer.3.", "bert.pooler.", "classifier.")) for n in trained)
    assert any(n.startswith("classifier.") for n in trained) and any(n.startswith("bert.pooler.") for n in trained)
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())
    groups = param_groups(model, 0.01)  # the optimizer sees the trained weights only
    assert sum(len(g["params"]) for g in groups) == len(trained)
    train_top_layers(model, 0)  # the head (and pooler) alone
    assert all(n.startswith(("bert.pooler.", "classifier.")) for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="trainable_layers=5, but the encoder has 4 layers"):
        train_top_layers(model, 5)


def test_batches_are_trimmed_to_the_longest_row_with_a_mask():
    batch = {
        "input_ids": torch.tensor([[2, 5, 3, 0, 0], [2, 3, 0, 0, 0]], dtype=torch.int32),
        "n_tokens": torch.tensor([3, 2], dtype=torch.int32),
        "label": torch.tensor([1, 0], dtype=torch.int32),
    }
    out = to_model_inputs(batch)
    assert out["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]] and out["input_ids"].dtype == torch.long
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["labels"].tolist() == [1, 0]


def test_on_a_gpu_a_batch_width_is_rounded_up_to_a_multiple_of_8_within_the_rows():
    from tokenlake.training.data import WIDTH_MULTIPLE

    assert WIDTH_MULTIPLE == {"cuda": 8}
    ids = torch.arange(1, 21, dtype=torch.int32).reshape(2, 10)
    batch = {"input_ids": ids, "n_tokens": torch.tensor([3, 2], dtype=torch.int32)}
    out = to_model_inputs(batch, multiple=4)
    assert out["input_ids"].tolist() == [[1, 2, 3, 4], [11, 12, 13, 14]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert out["labels"].tolist() == [[1, 2, 3, -100], [11, 12, -100, -100]]  # causal LM: padding ignored
    assert to_model_inputs({**batch, "n_tokens": torch.tensor([9, 2])}, multiple=8)["input_ids"].shape == (2, 10)


def test_steps_per_epoch_is_the_same_for_every_rank_and_refuses_too_little_data():
    assert steps_per_epoch(1000, 32, 2) == 15
    with pytest.raises(ValueError, match="too few"):
        steps_per_epoch(10, 32, 2)


def test_metrics_from_a_confusion_matrix():
    sums = {"loss_sum": torch.tensor(6.0, dtype=torch.float64), "confusion": torch.tensor([[3, 1], [0, 2]])}
    m = metrics(sums)
    assert m["accuracy"] == pytest.approx(5 / 6) and m["loss"] == pytest.approx(1.0) and m["count"] == 6
    assert m["macro_f1"] == pytest.approx((2 * 3 / (4 + 3) + 2 * 2 / (2 + 3)) / 2)


def test_auto_precision_is_off_on_cpu():
    assert precision("auto", torch.device("cpu")) is None
    assert precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        precision("fp16", torch.device("cpu"))


def _toy_batches(n_batches, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        labels = torch.randint(0, 2, (16,), generator=g)
        ids = torch.randint(10, 40, (16, 12), generator=g)
        ids[:, 1] = labels + 5  # the label is written in the second token
        ids[:, 0], ids[:, -1] = 2, 3
        yield {"input_ids": ids.int(), "n_tokens": torch.full((16,), 12, dtype=torch.int32), "label": labels.int()}


@pytest.mark.parametrize("grad_checkpointing", [False, True])
def test_fit_epoch_learns_a_toy_task(grad_checkpointing):
    torch.manual_seed(0)
    model = build_classifier("tiny", vocab_size=50, labels=["a", "b"], max_len=16)
    if grad_checkpointing:
        model.gradient_checkpointing_enable()
    before = metrics(evaluate(model, list(_toy_batches(4, seed=1)), num_labels=2, device=torch.device("cpu")))
    opt, sched = make_optimizer(model, lr=3e-3, weight_decay=0.01, total_steps=60, warmup_ratio=0.1)
    seen = []
    stats = fit_epoch(
        model,
        _toy_batches(120),
        steps=60,
        opt=opt,
        sched=sched,
        device=torch.device("cpu"),
        grad_accum_steps=2,
        on_step=lambda s, m: seen.append(m["lr"]),
    )
    after = metrics(evaluate(model, list(_toy_batches(4, seed=1)), num_labels=2, device=torch.device("cpu")))
    assert stats["samples"] == 60 * 2 * 16
    # the rate each step was taken with: warm-up from 1/6 of the peak, cosine down to almost 0
    assert len(seen) == 60 and seen[0] == pytest.approx(3e-3 / 6) and max(seen) == pytest.approx(3e-3)
    assert seen[-1] == pytest.approx(3e-3 * lr_factor(59, 60, 6)) and seen[-1] < 1e-5
    assert after["accuracy"] > 0.95 > before["accuracy"] - 0.2
    assert after["loss"] < before["loss"]


def test_progress_prints_plain_lines_when_not_a_terminal():
    import io

    from tokenlake.training.progress import progress_printer

    out = io.StringIO()
    on_step = progress_printer(1, 2, steps=20, world=2, stream=out)
    for step in range(20):
        on_step(step, {"loss": 0.5, "lr": 1e-3, "samples_per_s": 100.0})
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1] == "epoch 1/2  step 20/20 loss 0.5000 lr 1.00e-03 samples/s 200"


def test_length_bucketing_keeps_every_row_and_cuts_padding():
    from tokenlake.training.data import length_bucketed

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 64, (8 * 16,), generator=g)
    ids = torch.arange(8 * 16)
    batches = [{"n_tokens": lengths[i : i + 16], "row": ids[i : i + 16]} for i in range(0, 128, 16)]

    def padding_share(bs):
        return sum(int(b["n_tokens"].max()) * 16 - int(b["n_tokens"].sum()) for b in bs) / sum(
            int(b["n_tokens"].max()) * 16 for b in bs
        )

    bucketed = list(length_bucketed(iter(batches), pool=8))
    assert len(bucketed) == 8 and all(b["row"].shape[0] == 16 for b in bucketed)
    assert sorted(torch.cat([b["row"] for b in bucketed]).tolist()) == ids.tolist()
    assert padding_share(bucketed) < padding_share(batches) / 3
    assert (
        next(length_bucketed(iter(batches), pool=1))["row"].tolist()
        == batches[0]["row"][torch.argsort(batches[0]["n_tokens"], stable=True)].tolist()
    )


def test_passes_chain_seeded_one_pass_loaders_into_full_batches():
    from tokenlake.training.data import passes
    from tokenlake.training.gold_files import TensorSplit

    split = TensorSplit({"n_tokens": torch.arange(10), "row": torch.arange(10)})
    opened = []

    def open_pass(n):
        opened.append(n)
        return split.make_torch_dataloader(batch_size=4, seed=100 + n)

    stream = passes(open_pass, 4)
    batches = [next(stream)["row"].tolist() for _ in range(5)]  # 20 rows: two passes of 10
    assert all(len(b) == 4 for b in batches)  # a pass's partial batch is completed from the next
    rows = [row for batch in batches for row in batch]
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    assert rows[:10] != rows[10:] and opened == [0, 1]  # each pass reshuffled by its own seed
    again = passes(lambda n: split.make_torch_dataloader(batch_size=4, seed=100 + n), 4)
    assert [next(again)["row"].tolist() for _ in range(5)] == batches  # the seed alone decides

    empty = TensorSplit({"n_tokens": torch.arange(0), "row": torch.arange(0)})
    with pytest.raises(ValueError, match="no rows"):
        next(passes(lambda n: empty.make_torch_dataloader(batch_size=4), 4))


def test_rebatch_cuts_chunks_into_batches_and_shuffles_within_windows_by_its_seed():
    from tokenlake.training.data import rebatch

    chunks = [{"row": torch.arange(a, b), "n_tokens": torch.arange(a, b) % 7} for a, b in
              [(0, 5), (5, 5), (5, 23), (23, 30), (30, 61), (61, 64)]]  # fmt: skip
    plain = list(rebatch(iter(chunks), 8))
    assert [b["row"].tolist() for b in plain] == [list(range(i, min(i + 8, 64))) for i in range(0, 64, 8)]
    assert all(b["n_tokens"].tolist() == (b["row"] % 7).tolist() for b in plain)  # columns stay aligned
    assert [len(b["row"]) for b in rebatch(iter(chunks[:3]), 8)] == [8, 8, 7]  # the last batch may be short

    shuffled = list(rebatch(iter(chunks), 8, window=20, seed=3))
    rows = torch.cat([b["row"] for b in shuffled]).tolist()
    assert sorted(rows) == list(range(64)) and rows != list(range(64))
    assert all(b["n_tokens"].tolist() == (b["row"] % 7).tolist() for b in shuffled)
    assert [len(b["row"]) for b in shuffled] == [8] * 8
    # windows: 23 rows are held when the first is cut (16 leave, 7 wait), so the first two batches
    # hold rows of the first three chunks alone; the last chunk's rows come in the last batch
    assert max(rows[:16]) < 23 and {61, 62, 63} <= set(rows[-8:])
    assert torch.cat([b["row"] for b in rebatch(iter(chunks), 8, window=20, seed=3)]).tolist() == rows
    assert torch.cat([b["row"] for b in rebatch(iter(chunks), 8, window=20, seed=4)]).tolist() != rows
    assert list(rebatch(iter([]), 8, seed=1)) == []


def test_stop_early_counts_epochs_since_the_best_validation_loss():
    from tokenlake.training.loop import stop_early

    history = [{"val_loss": v} for v in (1.0, 0.8, 0.85, 0.79)]
    assert not stop_early(history, patience=0)  # off
    assert not stop_early(history, patience=1)  # epoch 4 improved
    assert stop_early(history[:3], patience=1) and not stop_early(history[:3], patience=2)
    assert stop_early(history, patience=1, min_delta=0.05)  # 0.79 is not 0.05 better than 0.8
    assert stop_early(history, patience=2, min_delta=0.05) and not stop_early(history, patience=3, min_delta=0.05)
    assert not stop_early([], patience=1)


def test_causal_lm_inputs_predict_real_tokens_only():
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]], dtype=torch.int32),
        "n_tokens": torch.tensor([3, 2], dtype=torch.int32),
    }
    assert to_model_inputs(batch)["labels"].tolist() == [[5, 6, 7], [5, 6, -100]]


def test_causal_lm_learns_a_repeating_sequence():
    from tokenlake.training.loop import evaluate_lm, lm_metrics
    from tokenlake.training.model import build_causal_lm

    torch.manual_seed(0)
    model = build_causal_lm("tiny", vocab_size=20, max_len=16)
    seq = torch.tensor([[2, 3, 4, 5] * 4] * 8, dtype=torch.int32)

    def batches(n):
        return ({"input_ids": seq, "n_tokens": torch.full((8,), 16, dtype=torch.int32)} for _ in range(n))

    before = lm_metrics(evaluate_lm(model, batches(1), device=torch.device("cpu")))
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.0, total_steps=40, warmup_ratio=0.1)
    fit_epoch(model, batches(40), steps=40, opt=opt, sched=sched, device=torch.device("cpu"))
    after = lm_metrics(evaluate_lm(model, batches(1), device=torch.device("cpu")))
    assert before["perplexity"] > 10 and after["perplexity"] < 1.5 and after["count"] == 8 * 15
