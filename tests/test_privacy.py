"""Differentially private training (``train.dp_epsilon``): the ε reported is the one Opacus's
accountant gives for the steps taken, and a resumed run spends what the uninterrupted one did
and lands where it landed (the noise comes from the restored RNG states)."""

import json
import shutil

import pytest

from tokenlake.jobs.cli import EXIT_CONFIG, main
from tokenlake.training import checkpoint
from tokenlake.training.data import steps_per_epoch
from tokenlake.training.privacy import PrivacyBudgetSpent, check_budget, plan, spent

# 64 rows per step (32 on each of 2 processes) over ~1,600 training rows: ~25 steps per epoch, a checkpoint every 10
TRAIN = ["--epochs", "1", "--batch-size", "64", "--set", "train.checkpoint_steps=10", "--set", "train.lr=3e-3",
         "--set", "train.baseline=false"]  # fmt: skip


def _opacus_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=noise, sample_rate=sample_rate)
    return accountant.get_epsilon(delta)


def test_the_planned_noise_spends_at_most_the_target_and_the_guard_stops_before_more():
    p = plan(epsilon=1.0, delta=None, max_grad_norm=1.0, train_rows=1000, global_batch=50, steps=100)
    assert p.delta == pytest.approx(1e-3) and p.sample_rate == pytest.approx(0.05)
    eps = _opacus_epsilon(p.noise_multiplier, p.sample_rate, 100, p.delta)
    assert 0.9 < eps <= 1.0  # Opacus's own accountant, stepped one step at a time
    assert spent([(p.noise_multiplier, p.sample_rate, 100)], p.delta) == pytest.approx(eps)
    check_budget(p, [(p.noise_multiplier, p.sample_rate, 50)], 50)  # the planned steps fit
    with pytest.raises(PrivacyBudgetSpent, match="would be exceeded: 100 steps spent"):
        check_budget(p, [(p.noise_multiplier, p.sample_rate, 100)], 20)


def test_dp_settings_are_checked():
    assert main(["train", "--work", "nowhere", "--set", "train.dp_epsilon=0"]) == EXIT_CONFIG
    assert main(["train", "--work", "nowhere", "--set", "train.dp_epsilon=1", "--set", "train.grad_accum_steps=2"]) == (
        EXIT_CONFIG
    )


@pytest.mark.slow
def test_dp_training_reports_the_accountants_epsilon_and_resumes_exactly(work_copy, tmp_path):
    work = work_copy
    assert main(["train", "--work", str(work), *TRAIN, "--set", "train.dp_epsilon=8"]) == 0
    training = json.loads((work / "report.json").read_text())["training"]
    privacy = training["privacy"]
    rows = sum(training["data_path"]["rows_per_rank"]["train"])
    steps = privacy["steps"]
    assert steps == steps_per_epoch(rows, 32, 2)  # every step was accounted for
    assert privacy["sample_rate"] == pytest.approx(64 / rows) and privacy["delta"] == pytest.approx(1 / rows)
    expected = _opacus_epsilon(privacy["noise_multiplier"], privacy["sample_rate"], steps, privacy["delta"])
    assert privacy["epsilon"] == pytest.approx(expected, rel=1e-5)
    assert privacy["epsilon"] <= 8.0 and privacy["target_epsilon"] == 8.0
    assert privacy["tokenizer_from_data"] is True  # etl_work trained its tokenizer on the corpus
    assert privacy["max_grad_norm"] == 1.0 and privacy["accountant"] == "rdp"

    # as if it had been killed after an earlier checkpoint: resume from the oldest one kept
    kept = sorted((work / "checkpoints").glob("step-*"))
    assert len(kept) >= 2
    for later in kept[1:]:
        shutil.rmtree(later)
    (work / "checkpoints" / "latest").write_text(kept[0].name)
    resumed_at = checkpoint.position(checkpoint.latest(work / "checkpoints"))
    assert 0 < resumed_at["global_step"] < steps
    assert resumed_at["privacy_history"][0][2] == resumed_at["global_step"]  # the accountant's steps so far
    assert main(["train", "--work", str(work), *TRAIN, "--set", "train.dp_epsilon=8", "--resume"]) == 0
    again = json.loads((work / "report.json").read_text())["training"]
    assert again["privacy"] == privacy  # the accountant's steps were restored, not counted from zero
    # the noise comes from the restored RNG states: the same run, not a similar one
    assert again["epochs"][-1]["val_loss"] == pytest.approx(training["epochs"][-1]["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_dp_fine_tuning_minilm_stays_usable_at_epsilon_8(minilm_work, tmp_path):
    work = shutil.copytree(minilm_work, tmp_path / "work")
    private = ["--model", "minilm", "--epochs", "3", "--set", "train.dp_epsilon=8", "--set", "train.baseline=false"]
    assert main(["train", "--work", str(work), *private]) == 0
    training = json.loads((work / "report.json").read_text())["training"]
    assert training["privacy"]["epsilon"] <= 8.0 and training["privacy"]["tokenizer_from_data"] is False
    # under DP a pretrained encoder fine-tunes its top 2 layers and head, at a rate for noisy gradients
    assert training["trainable_layers"] == 2 and training["lr"] == 3e-3
    assert training["metrics"]["test_accuracy"] >= 0.75  # four classes, "X, not Y" among them: chance is 0.25
