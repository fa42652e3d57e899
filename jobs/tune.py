"""``tokenlake tune``: an Optuna study over training settings on one pinned gold version.

Every trial is one TorchDistributor training (``training.launch``) in its own folder under
``WORK/tuning/trials``, reporting each epoch's validation loss to the study so that the median
pruner can stop it. The study lives in a SQLite storage under the work dir, so a killed ``tune``
continues where it stopped (the trial that was running counts as failed); each trial is a nested
MLflow run under the study's parent run, which holds the best parameters, the best trial's
metrics and the optimisation history. The best parameters are written to
``WORK/tuning/best.yaml``, which ``tokenlake train --config`` takes as it is.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace

import yaml
from pyspark.sql import SparkSession

from tokenlake.etl import storage
from tokenlake.etl.storage import WorkDir
from tokenlake.jobs.config import PipelineConfig
from tokenlake.jobs.gold_trust import check_model_tokenizer, usable_gold
from tokenlake.jobs.mlflow_run import mlflow_run, set_stage
from tokenlake.jobs.report import update_report
from tokenlake.training.config import GoldData
from tokenlake.training.launch import TrainingFailed, launch_training
from tokenlake.training.tracking import lineage_tags, log_epochs, log_figure, test_scores
from tokenlake.training.tuning import load_space, make_pruner, make_sampler, suggest

log = logging.getLogger("tokenlake.tune")
TUNING = "tuning"
BEST = "best.yaml"


def storage_url(work: WorkDir) -> str:
    """The study's RDB storage: SQLite in the work dir (its local copy when the work dir is remote)."""
    (work.local / TUNING).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{work.local / TUNING / 'optuna.db'}"


def open_study(name: str, url: str, space: dict):
    """The study ``name`` (created, or loaded to continue it); trials a killed ``tune`` left
    running are marked failed, and the space's ``enqueue`` trials are queued once."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, pruner = make_sampler(space["sampler"]), make_pruner(space["pruner"])
    study = optuna.create_study(study_name=name, storage=url, direction="minimize", load_if_exists=True,
                                sampler=sampler, pruner=pruner)  # fmt: skip
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning("trial %d of study %s was running when tune stopped: marked failed", trial.number, name)
        study.tell(trial.number, state=TrialState.FAIL)
    for params in space["enqueue"]:
        study.enqueue_trial(params, skip_if_exists=True)
    return study


def counts(study) -> dict:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {"finished": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL)}  # fmt: skip


def run_tune(
    spark: SparkSession,
    work: WorkDir,
    cfg: PipelineConfig,
    *,
    trials: int,
    timeout_s: float | None = None,
    study_name: str = "tokenlake",
    space_path: str | None = None,
    version: int | None = None,
    mlflow_uri: str | None = None,
) -> dict:
    """Run the study until it holds ``trials`` finished or pruned trials (or ``timeout_s`` passed,
    the running trial finishing); write ``best.yaml`` and the report's ``tuning``."""
    work = WorkDir.of(work)
    space = check_tune_settings(cfg, space_path)
    gold, commit = usable_gold(spark, work, version)
    check_model_tokenizer(cfg, commit)
    url = storage_url(work)
    study = open_study(study_name, url, space)
    done = counts(study)
    remaining = max(0, trials - done["finished"] - done["pruned"])
    log.info("study %s (%s): %s so far, %d trial(s) to run", study_name, url, done, remaining)
    start = time.perf_counter()
    with mlflow_run(mlflow_uri, work, spark, cfg, run_id=study.user_attrs.get("mlflow_run_id")) as run:
        import mlflow

        set_stage("tune")
        study.set_user_attr("mlflow_run_id", run.info.run_id)
        mlflow.set_tags(
            {**lineage_tags({"gold": gold}, None, commit.tokenizer_fingerprint), "optuna.study": study_name}
        )
        objective = Objective(spark, work, cfg, gold, GoldData.of_commit(commit), study, space, url)
        try:
            study.optimize(objective, n_trials=remaining, timeout=timeout_s, catch=(TrainingFailed,))
        finally:
            storage.remove(work.path(TUNING, "trials"))
        tuning = summarise(study, work, cfg, url)
        log_study(study, tuning, work.local / TUNING / BEST)
    timings = {"tune": round(time.perf_counter() - start, 3)}
    return update_report(work, tuning=tuning, timings_s=timings)


def check_tune_settings(cfg: PipelineConfig, space_path: str | None) -> dict:
    """The search space; a ``ValueError`` for a bad one, or for ``--resume`` (a study continues by name)."""
    if cfg.train.resume:
        raise ValueError("tune continues a study by its --study name; --resume does not apply to it")
    return load_space(space_path, cfg.train)


class Objective:
    """One trial: its settings drawn from the space, trained on the pinned gold version in a nested
    MLflow run; its value is the last epoch's validation loss (the model a train run keeps)."""

    def __init__(self, spark, work: WorkDir, cfg: PipelineConfig, gold: dict, data: GoldData, study, space: dict,
                 url: str):  # fmt: skip
        self.spark, self.work, self.cfg, self.gold, self.data = spark, work, cfg, gold, data
        self.study, self.space, self.url = study, space, url

    def __call__(self, trial) -> float:
        import mlflow
        import optuna

        params = suggest(trial, self.space["params"])
        try:
            train = replace(self.cfg.train, **params, resume=False, baseline=False)
        except ValueError as exc:  # the space allows a value the settings refuse: this trial fails, not the study
            raise TrainingFailed(f"trial {trial.number}: {exc}") from None
        info = {"storage": self.url, "study": self.study.study_name, "trial_id": trial._trial_id,
                "pruner": self.space["pruner"]}  # fmt: skip
        folder = (TUNING, "trials", str(trial.number))
        log.info("trial %d: %s", trial.number, params)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True) as run:
            mlflow.log_params(params)
            mlflow.set_tag("optuna.trial", str(trial.number))
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            try:
                result = launch_training(self.spark, self.gold, self.work, train, self.data, trial=info, under=folder)
            finally:
                storage.remove(self.work.path(*folder))  # a trial's model is not kept: best.yaml trains it again
            log_epochs(result)
            pruned = result["stopped"] == "pruned"
            mlflow.set_tag("optuna.state", "pruned" if pruned else "finished")
            if not pruned:
                trial.set_user_attr("test", test_scores(result["test"]))
        if pruned:
            raise optuna.TrialPruned(f"pruned after epoch {result['history'][-1]['epoch']}")
        return float(result["history"][-1]["val_loss"])


def summarise(study, work: WorkDir, cfg: PipelineConfig, url: str) -> dict:
    """The report's ``tuning``; ``best.yaml`` written (``TrainingFailed`` if no trial finished)."""
    done = counts(study)
    if not done["finished"]:
        raise TrainingFailed(f"no trial of study {study.study_name} finished ({done}); see the trials' MLflow runs")
    best = study.best_trial
    settings = {"model": cfg.train.model, "epochs": cfg.train.epochs, **best.params}
    best_file = work.local / TUNING / BEST
    best_file.write_text(
        f"# tokenlake tune: best trial {best.number} of study {study.study_name} "
        f"(validation loss {best.value:.4f}); use with: tokenlake train --config {BEST}\n"
        + yaml.safe_dump({"train": settings}, sort_keys=False)
    )
    return {
        "study": study.study_name,
        "storage": url,
        "trials": done,
        "best_trial": best.number,
        "best_params": best.params,
        "best_val_loss": best.value,
        "best_test": best.user_attrs.get("test"),
        "best_config": work.published(best_file),
        "mlflow_run_id": study.user_attrs.get("mlflow_run_id"),
    }


def log_study(study, tuning: dict, best_file) -> None:
    """The parent run: best parameters (tags), the best trial's metrics, ``best.yaml`` and the
    optimisation history."""
    import mlflow
    import optuna

    mlflow.set_tags({f"best.{k}": str(v) for k, v in tuning["best_params"].items()})
    mlflow.set_tag("best_trial", str(tuning["best_trial"]))
    metrics = {"best_val_loss": tuning["best_val_loss"], **{f"trials_{k}": v for k, v in tuning["trials"].items()}}
    metrics |= {f"best_test_{k}": float(v) for k, v in (tuning["best_test"] or {}).items()}
    mlflow.log_metrics(metrics)
    mlflow.log_dict(tuning, "tuning/summary.json")
    mlflow.log_artifact(str(best_file), artifact_path="tuning")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's matplotlib plots are marked experimental
        axes = optuna.visualization.matplotlib.plot_optimization_history(study)
    log_figure(axes.figure, "tuning/optimization_history.png")
