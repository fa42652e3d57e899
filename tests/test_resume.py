"""Kill -9 in the middle of an epoch, resume, and land where an uninterrupted run lands."""

import json
import shutil
import subprocess
import sys

import pytest

from tokenlake.jobs.cli import EXIT_TRAINING, EXIT_VALIDATION, main
from tokenlake.training import checkpoint

from conftest import kill_at_a_mid_epoch_checkpoint

# 50 steps per epoch, a checkpoint every 10: the kill lands inside an epoch
TRAIN = ["--epochs", "2", "--batch-size", "32", "--set", "train.checkpoint_steps=10", "--set", "train.baseline=false"]


def _mlflow(work):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(spark, corpus, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["etl", "--input", str(corpus), "--work", str(work), "--set", "etl.vocab_size=2000"]) == 0
    assert main(["train", "--work", str(work), *TRAIN]) == 0
    first = json.loads((work / "report.json").read_text())["training"]
    uninterrupted = first["metrics"]["val_accuracy"]

    # the same training in a process of its own (driver, JVM, torchrun and ranks in one group)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenlake.jobs.cli", "train", "--work", str(work), *TRAIN],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = kill_at_a_mid_epoch_checkpoint(proc, work / "checkpoints", timeout_s=300, poll_s=0.05)
    assert seen is not None, "no mid-epoch checkpoint was written"
    killed_at = checkpoint.position(checkpoint.latest(work / "checkpoints"))
    assert killed_at["epoch"] < 2
    assert not (work / "model" / "config.json").exists()  # the killed run never finished
    run_id = killed_at["mlflow_run_id"]
    assert _mlflow(work).get_run(run_id).info.status == "RUNNING"  # killed: nobody ended it

    capsys.readouterr()
    assert main(["train", "--work", str(work), "--resume", *TRAIN]) == 0
    assert f"resumed from {work / 'checkpoints'}" in capsys.readouterr().out
    report = json.loads((work / "report.json").read_text())
    training = report["training"]
    assert [e["epoch"] for e in training["epochs"]] == [1, 2]
    assert abs(training["metrics"]["val_accuracy"] - uninterrupted) <= 0.01, (first["epochs"], training["epochs"])
    # the replayed data order makes it the same run, not merely a similar one
    assert training["epochs"][-1]["val_loss"] == pytest.approx(first["epochs"][-1]["val_loss"], rel=1e-4)
    assert training["mlflow_run_id"] == run_id  # the interrupted run was continued, not duplicated
    run = _mlflow(work).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
    assert not (work / "petastorm_cache").exists()

    # resuming with settings that change what a step is, or with nothing to resume, is refused
    assert main(["train", "--work", str(work), "--resume", *TRAIN, "--batch-size", "16"]) == EXIT_TRAINING
    assert "batch_size" in capsys.readouterr().err
    shutil.rmtree(work / "checkpoints")
    assert main(["train", "--work", str(work), "--resume", *TRAIN]) == EXIT_TRAINING
    assert "no checkpoint" in capsys.readouterr().err
    # and a work dir without gold is a clear refusal, not a stack trace
    assert main(["train", "--work", str(tmp_path / "empty")]) == EXIT_VALIDATION
    assert "no gold table" in capsys.readouterr().err
