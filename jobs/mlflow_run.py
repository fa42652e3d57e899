"""The MLflow run a command trains in: where it is tracked, which run a ``--resume`` continues,
and how it ends: FINISHED, FAILED, or KILLED when SIGTERM or Ctrl-C stopped it (``Stopped``).

The stage a run is in is its ``stage`` tag (``etl``, ``train``), so that a stopped run says where
it stopped, in MLflow and on the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import SparkSession

from tokenlake.etl.storage import WorkDir
from tokenlake.jobs.config import PipelineConfig
from tokenlake.training import checkpoint
from tokenlake.training.launch import CHECKPOINTS
from tokenlake.training.tracking import flatten

log = logging.getLogger("tokenlake")
EXPERIMENT = "tokenlake"


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived. Raised in the main thread like ``KeyboardInterrupt`` (a
    ``BaseException``, so no ``except Exception`` swallows it): every ``with`` and ``finally`` on
    the way out closes what it opened, and the TorchDistributor's ranks are terminated."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal = signal.Signals(signum).name
        self.where: list[str] = []
        """What the handlers it passed through say about where it stopped."""
        super().__init__(self.signal)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``Stopped`` while the block runs (main thread only)."""

    def raise_stopped(signum, frame):
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():  # only it can take signals
        yield
        return
    previous = {s: signal.signal(s, raise_stopped) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def default_mlflow_uri(work: WorkDir | Path | str) -> str:
    """A sqlite store in the work dir, or in its local copy when the work dir is remote."""
    return f"sqlite:///{WorkDir.of(work).local / 'mlflow.db'}"


def _interrupted_run(work: WorkDir) -> str | None:
    """The id of the MLflow run that wrote the latest checkpoint (None without one)."""
    found = checkpoint.latest(work.path(CHECKPOINTS))
    return checkpoint.position(found).get("mlflow_run_id") if found else None


def _run_exists(run_id: str) -> bool:
    import mlflow

    try:
        return mlflow.get_run(run_id) is not None
    except mlflow.exceptions.MlflowException:
        return False


def _start_run(uri: str | None, work: WorkDir, spark: SparkSession | None, cfg: PipelineConfig, run_id: str | None):
    import mlflow

    work.local.mkdir(parents=True, exist_ok=True)
    if uri is None and work.remote:
        log.info("MLflow: no --mlflow-uri, so the tracking store is local: %s", default_mlflow_uri(work))
    mlflow.set_tracking_uri(uri or default_mlflow_uri(work))
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        local = (uri or default_mlflow_uri(work)).startswith("sqlite:")
        mlflow.create_experiment(EXPERIMENT, artifact_location=(work.local / "mlartifacts").as_uri() if local else None)
    mlflow.set_experiment(EXPERIMENT)
    interrupted = _interrupted_run(work) if cfg.train.resume else run_id
    if interrupted and _run_exists(interrupted):  # the killed run continues: same params, one history
        run = mlflow.start_run(run_id=interrupted)
        mlflow.set_tag("resumed", "true")
        return run
    run = mlflow.start_run()
    params = {**flatten("etl", cfg.as_dict()["etl"]), **flatten("train", cfg.as_dict()["train"])}
    # the rate, batch and trained layers used, not "None"
    mlflow.log_params({**params, "train.lr": str(cfg.train.peak_lr), "train.batch_size": str(cfg.train.global_batch),
                       "train.trainable_layers": str(cfg.train.top_layers)})  # fmt: skip
    master = spark.sparkContext.master if spark is not None else "none (--no-spark)"
    world = os.environ.get("WORLD_SIZE", "1") if spark is None else str(cfg.train.num_processes)
    mlflow.set_tags({"spark_master": master, "world_size": world})
    if interrupted and cfg.train.resume:  # the checkpoint's run is not in this store: say so, and link the two
        mlflow.set_tags({"resumed": "true", "resumed_from_run": interrupted})
        log.warning(
            "--resume: the MLflow run %s that wrote the checkpoint is not in the tracking store %s; the "
            "training continues in a new run %s, tagged resumed_from_run=%s (its earlier metrics stay with %s)",
            interrupted, mlflow.get_tracking_uri(), run.info.run_id, interrupted, interrupted,
        )  # fmt: skip
    return run


@contextlib.contextmanager
def mlflow_run(
    uri: str | None, work: WorkDir, spark: SparkSession | None, cfg: PipelineConfig, run_id: str | None = None
):
    """The command's MLflow run (a new one, or with ``train.resume`` the one the latest checkpoint
    belongs to, or ``run_id`` if it exists: a study's), ended FINISHED, FAILED or, when
    ``Stopped``, KILLED with ``stopped_by`` and the stage it was in."""
    import mlflow

    run = _start_run(uri, work, spark, cfg, run_id)
    try:
        yield run
    except Stopped as stop:
        stage = mlflow.get_run(run.info.run_id).data.tags.get("stage", "start-up")
        mlflow.set_tag("stopped_by", stop.signal)
        mlflow.end_run("KILLED")
        stop.where.append(f"during {stage}; MLflow run {run.info.run_id} is marked KILLED")
        found = checkpoint.latest(work.path(CHECKPOINTS))
        if found:
            stop.where.append(f"the latest checkpoint is {found} (--resume continues from it)")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def set_stage(name: str) -> None:
    """Record the stage the active run is in (its ``stage`` tag)."""
    import mlflow

    mlflow.set_tag("stage", name)
