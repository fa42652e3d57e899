"""The training side of ``make bench`` and ``benchmarks/gpu.py``: the gold reader against a plain
pyarrow loop (``loader_ratio``), TorchDistributor + Petastorm against the same loop on in-memory
tensors (``training_ratios``), padding with and without length bucketing, and what they share (a
small gold table of a real one's first rows, steady-state rates)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from tokenlake.benchmarks.measure import median
from tokenlake.etl.config import Task

log = logging.getLogger("tokenlake.bench")


def first_rows(gold, path: str | Path, train_rows: int, eval_rows: int, *, files: int | None = None) -> dict:
    """The first rows of each split of ``gold`` as a Delta table of its own (``files`` files if
    given: each rank reads whole row groups, so every one of them gets some)."""
    from tokenlake.etl.lake import write_table

    parts = [gold.where(f"split = '{s}'").limit(train_rows if s == "train" else eval_rows)
             for s in ("train", "validation", "test")]  # fmt: skip
    frame = parts[0].unionByName(parts[1]).unionByName(parts[2])
    frame = frame.repartition(files) if files else frame
    shutil.rmtree(path, ignore_errors=True)
    return {"path": str(path), "version": write_table(frame, str(path))}


def bucketing_fractions(n_tokens, batch_size: int, pool: int, seed: int = 0) -> dict:
    """Real-token share of the batch slots, each batch trimmed to its longest row (as training does),
    with random batches and with length-bucketed ones."""
    import torch

    from tokenlake.training.data import length_bucketed

    n = torch.as_tensor(n_tokens)[torch.randperm(len(n_tokens), generator=torch.Generator().manual_seed(seed))]
    batches = [{"n_tokens": n[i : i + batch_size]} for i in range(0, len(n) - batch_size + 1, batch_size)]

    def share(stream) -> float:
        real = slots = 0
        for b in stream:
            real += int(b["n_tokens"].sum())
            slots += int(b["n_tokens"].max()) * len(b["n_tokens"])
        return real / slots

    return {"padding": share(batches), "bucketing": share(length_bucketed(iter(batches), pool, seed=seed))}


def loader_ratio(spark, gold, work: Path, max_len: int, rows: int, batch_size: int, workers: int, repeats: int) -> dict:
    """Petastorm's torch loader over gold's files in place (what training reads) vs a plain pyarrow
    loop over the same files doing the same work: rows of the train split, padded, as tensors."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    from tokenlake.etl.lake import read_table
    from tokenlake.training.gold_reader import local_path, pad_rows
    from tokenlake.training.launch import gold_splits

    table = first_rows(gold, work / "gold_loader", rows, 0)
    files = sorted(read_table(spark, table["path"], table["version"]).inputFiles())
    train = gold_splits(files, max_len=max_len, labelled=True, world=1, names=("train",))[0]["train"]

    def petastorm_side() -> float:
        n, start = 0, time.perf_counter()
        with train.make_torch_dataloader(batch_size=batch_size, workers_count=workers) as loader:
            for b in loader:
                n += b["input_ids"].shape[0]
        return n / (time.perf_counter() - start)

    def pyarrow_side() -> float:
        n, start = 0, time.perf_counter()
        for path in files:
            for rb in pq.ParquetFile(local_path(path)).iter_batches(batch_size=batch_size):
                rb = rb.filter(pc.equal(rb.column("split"), "train"))
                n_tokens = rb.column("n_tokens").to_numpy()
                b = {
                    "input_ids": torch.from_numpy(pad_rows(pc.list_flatten(rb.column("input_ids")).to_numpy(),
                                                           n_tokens, max_len)),
                    "n_tokens": torch.from_numpy(n_tokens),
                    "label": torch.from_numpy(rb.column("label").to_numpy()),
                }  # fmt: skip
                n += b["input_ids"].shape[0]
        return n / (time.perf_counter() - start)

    petastorm_side(), pyarrow_side()  # warm-up: page cache, reader pools
    pairs = [(petastorm_side(), pyarrow_side()) for _ in range(repeats)]
    return {
        "ratio": median([a / b for a, b in pairs]),
        "petastorm_samples_per_s": median([a for a, _ in pairs]),
        "raw": {
            "rows": len(train),
            "petastorm_samples_per_s": [a for a, _ in pairs],
            "pyarrow_samples_per_s": [b for _, b in pairs],
        },
    }


WARMUP_STEPS = 10
"""Steps left out of a steady-state rate: the first batches' reader start-up and allocations."""


def steady_rate(steps: list[dict], key: str = "samples_per_s") -> float:
    """``key`` per second over the logged steps after ``WARMUP_STEPS`` (all steps when there are
    fewer): their sum over those steps' seconds, each step's seconds being its batch (the same every
    step) over its ``samples_per_s``. Every step counts, the ones that wait on the reader or sort a
    pool of batches too: a median of per-step rates would hide them."""
    kept = steps[WARMUP_STEPS:] or steps
    seconds = [1 / s["samples_per_s"] for s in kept]
    return sum(s[key] * t for s, t in zip(kept, seconds, strict=True)) / sum(seconds)


def in_memory_training(gold, cfg, *, vocab_size: int, labels: list[str], max_len: int, steps: int) -> float:
    """Steady-state samples/s of the training loop (``fit_epoch``) fed from in-memory tensors, with
    the allocator settings a rank trains with."""
    import torch

    from tokenlake.training.allocator import keep_step_memory
    from tokenlake.training.data import length_bucketed
    from tokenlake.training.loop import fit_epoch, make_optimizer
    from tokenlake.training.model import build_model

    rows = (
        gold.where("split = 'train'").select("input_ids", "n_tokens", "label").limit(steps * cfg.rank_batch).collect()
    )
    ids = torch.zeros((len(rows), max_len), dtype=torch.int32)
    for i, r in enumerate(rows):
        ids[i, : r["n_tokens"]] = torch.as_tensor(r["input_ids"], dtype=torch.int32)
    n = torch.as_tensor([r["n_tokens"] for r in rows], dtype=torch.int32)
    y = torch.as_tensor([r["label"] for r in rows])
    batches = [
        {
            "input_ids": ids[i : i + cfg.rank_batch],
            "n_tokens": n[i : i + cfg.rank_batch],
            "label": y[i : i + cfg.rank_batch],
        }
        for i in range(0, len(rows), cfg.rank_batch)
    ]
    keep_step_memory()
    torch.manual_seed(cfg.seed)
    model = build_model(Task.CLASSIFICATION, cfg.model, vocab_size=vocab_size, labels=labels, max_len=max_len)
    opt, sched = make_optimizer(
        model, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, total_steps=steps, warmup_ratio=cfg.warmup_ratio
    )
    rates = []
    fit_epoch(
        model, length_bucketed(iter(batches), cfg.bucket_batches, seed=cfg.seed), steps=len(batches),
        opt=opt, sched=sched, device=torch.device("cpu"), max_grad_norm=cfg.max_grad_norm,
        on_step=lambda _, m: rates.append({"samples_per_s": m["step_samples_per_s"]}),
    )  # fmt: skip
    return steady_rate(rates)


def training_ratios(spark, gold, work: Path, meta: dict, steps: int, repeats: int) -> dict:
    from tokenlake.training.config import GoldData, TrainConfig
    from tokenlake.training.launch import launch_training

    cfg = TrainConfig(num_processes=1, epochs=1, local_mode=True, batch_size=32)
    table = first_rows(gold, work / "gold_small", steps * cfg.rank_batch, 2 * cfg.eval_batch_size)
    kwargs = {"vocab_size": meta["vocab_size"], "labels": meta["labels"], "max_len": meta["max_len"]}
    pairs, startups = [], []
    for _ in range(repeats + 1):  # the first pair warms up
        result = launch_training(spark, table, work / "train", cfg, GoldData(Task.CLASSIFICATION, **kwargs))
        distributed = steady_rate(result["steps"])
        memory = in_memory_training(gold, cfg, steps=steps, **kwargs)
        pairs.append((distributed, memory))
        startups.append(result["startup_s"])
        log.info("training samples/s after warm-up: TorchDistributor+Petastorm %.1f, in memory %.1f; start-up %.1f s",
                 distributed, memory, result["startup_s"])  # fmt: skip
    pairs, startups = pairs[1:], startups[1:]
    return {
        "ratio": median([a / b for a, b in pairs]),
        "train_samples_per_s": median([b for _, b in pairs]),
        "startup_s": median(startups),
        "raw": {"model": cfg.model, "batch_size": cfg.rank_batch, "steps": steps, "warmup_steps": WARMUP_STEPS,
                "distributed_samples_per_s": [a for a, _ in pairs], "in_memory_samples_per_s": [b for _, b in pairs],
                "startup_s": startups},
    }  # fmt: skip
