"""``tokenlake tune``: an Optuna study of TorchDistributor trainings, one pruned, whose best
settings ``tokenlake train --config`` takes, and which a second ``tune`` continues."""

import json

import pytest
import yaml

from tokenlake.jobs.cli import EXIT_CONFIG, main
from tokenlake.training.config import TrainConfig
from tokenlake.training.tuning import load_space, suggest

# trials 0 and 1 learn; trial 2's learning rate cannot, so after its first epoch its validation
# loss is above the median of the first two at that epoch, and the median pruner stops it
SPACE = """
params:
  lr: {low: 1.0e-7, high: 1.0e-2, log: true}
  batch_size: {choices: [32, 64]}
enqueue:
  - {lr: 3.0e-3, batch_size: 32}
  - {lr: 1.0e-3, batch_size: 32}
  - {lr: 1.0e-7, batch_size: 64}
pruner: {startup_trials: 2, warmup_epochs: 0}
sampler: {seed: 3}
"""


def test_a_space_file_is_checked_and_drawn_from(tmp_path):
    import optuna

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    loaded = load_space(space, TrainConfig())
    assert loaded["pruner"] == {"startup_trials": 2, "warmup_epochs": 0} and len(loaded["enqueue"]) == 3
    drawn = suggest(optuna.trial.FixedTrial({"lr": 1e-4, "batch_size": 64}), loaded["params"])
    assert drawn == {"lr": 1e-4, "batch_size": 64}
    for bad, message in [("params: {learning_rate: {low: 1, high: 2}}", "not a train setting"),
                         ("params: {lr: {low: 1}}", "needs choices"),
                         ("params: {lr: {low: 0.1, high: 1}}\nenqueue: [{epochs: 3}]", "only the params"),
                         ("params: {lr: {low: 0.1, high: 1}}\nextra: 1", "unknown section")]:  # fmt: skip
        space.write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_space(space, TrainConfig())
    default = load_space(None, TrainConfig(model="minilm"))
    assert set(default["params"]) == {"lr", "warmup_ratio", "weight_decay", "batch_size", "dropout"}
    assert default["enqueue"][0]["lr"] == TrainConfig(model="minilm").peak_lr  # the defaults are trial 0


def test_tune_refuses_resume_and_a_bad_space(work_copy, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("params: {nope: {low: 1, high: 2}}")
    assert main(["tune", "--work", str(work_copy), "--trials", "1", "--space", str(space)]) == EXIT_CONFIG
    assert "'nope' is not a train setting" in capsys.readouterr().err
    assert main(["tune", "--work", str(work_copy), "--trials", "1", "--resume"]) == EXIT_CONFIG


@pytest.mark.slow
def test_a_study_of_three_trials_prunes_one_writes_best_yaml_and_continues(work_copy, tmp_path, capsys):
    import optuna
    from mlflow.tracking import MlflowClient

    work, space = work_copy, tmp_path / "space.yaml"
    space.write_text(SPACE)
    tune = ["tune", "--work", str(work), "--epochs", "2", "--space", str(space), "--study", "s1"]
    assert main([*tune, "--trials", "3"]) == 0
    tuning = json.loads((work / "report.json").read_text())["tuning"]
    assert tuning["trials"] == {"finished": 2, "pruned": 1, "failed": 0}
    assert tuning["best_trial"] in (0, 1) and tuning["best_params"]["lr"] in (3e-3, 1e-3)
    assert tuning["best_test"]["accuracy"] > 0.5
    best = yaml.safe_load((work / "tuning" / "best.yaml").read_text())
    assert best == {"train": {"model": "tiny", "epochs": 2, **tuning["best_params"]}}
    capsys.readouterr()
    assert main(["config", "show", "--config", str(work / "tuning" / "best.yaml")]) == 0  # train --config takes it
    shown = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["train.lr"])
    assert str(tuning["best_params"]["lr"]) in shown and "best.yaml" in shown, shown
    assert not (work / "tuning" / "trials").exists()  # no trial's model is kept
    assert not (work / "model").exists()  # nor is the work dir's model touched

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    parent = client.get_run(tuning["mlflow_run_id"])
    assert parent.data.tags["best_trial"] == str(tuning["best_trial"])
    assert parent.data.metrics["best_val_loss"] == pytest.approx(tuning["best_val_loss"])
    assert "tuning/optimization_history.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")  # fmt: skip
    assert sorted(r.data.tags["optuna.state"] for r in children) == ["finished", "finished", "pruned"]

    # a tune killed mid-trial leaves that trial running; the next one marks it failed and goes on
    study = optuna.load_study(study_name="s1", storage=tuning["storage"])
    study.ask()
    assert main([*tune, "--trials", "4"]) == 0
    again = json.loads((work / "report.json").read_text())["tuning"]
    assert again["trials"]["finished"] + again["trials"]["pruned"] == 4 and again["trials"]["failed"] == 1
    assert again["mlflow_run_id"] == tuning["mlflow_run_id"]  # one parent run for the whole study
