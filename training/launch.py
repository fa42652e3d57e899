"""Driver side of training: gold Delta version -> its Parquet files read in place -> TorchDistributor.

The gold table is read at the version the ETL published (time travel): the ranks read that
version's own files (``training.gold_reader``), so no copy of the data is written before the first
step. A result is trusted only if every rank confirmed rank 0's broadcast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tokenlake.etl import storage
from tokenlake.etl.config import SPLITS
from tokenlake.etl.lake import error_cause, read_table
from tokenlake.etl.storage import WorkDir
from tokenlake.training import checkpoint
from tokenlake.training.config import GoldData, TrainConfig, TrainSpec
from tokenlake.training.data import steps_per_epoch
from tokenlake.training.gold_files import LogIncomplete, delta_files
from tokenlake.training.gold_reader import GoldSplit, parquet_columns, row_groups, shard_rows

if TYPE_CHECKING:  # annotations only: train_without_spark runs where pyspark is not installed
    from pyspark.sql import SparkSession

log = logging.getLogger("tokenlake.train")


class TrainingFailed(RuntimeError):
    """Training did not produce a result that every rank confirmed."""


def gold_splits(
    files: list[str], *, max_len: int, labelled: bool, world: int, names: tuple[str, ...] = SPLITS
) -> tuple[dict, dict]:
    """Each split (``names``) of the gold files as a ``GoldSplit`` read in place, and what the report says
    about the data path. Refuse, before any rank starts, a layout that leaves a rank without
    training rows (a rank reads whole row groups) or a split without rows."""
    groups = row_groups(files)
    splits, per_rank = {}, {}
    for split in names:
        per_rank[split] = shard_rows(groups, split, world)
        holding = sum(1 for g in groups if g.rows.get(split))
        if split == "train" and (holding < world or min(per_rank[split]) == 0):
            raise TrainingFailed(
                f"the train split is in {holding} of gold's {len(groups)} row groups (rows per rank: "
                f"{per_rank[split]}); {world} processes need one at least each: rebuild gold with more files "
                f"(--set etl.min_files={world} or a smaller etl.target_file_tokens) or use fewer processes"
            )
        if sum(per_rank[split]) == 0:
            raise TrainingFailed(f"the {split} split of gold has no rows")
        splits[split] = GoldSplit(tuple(files), split, max_len, labelled, tuple(per_rank[split]))
    data = {"read": "in_place", "files": len(files), "row_groups": len(groups), "rows_per_rank": per_rank,
            "copy_bytes": 0}  # fmt: skip
    return splits, data


FAILURES = "failures"
CHECKPOINTS = "checkpoints"


def resume_point(root: str, cfg: TrainConfig, gold: dict) -> str | None:
    """The checkpoint to resume from (``cfg.resume``), after checking it belongs to this data and
    these settings; a fresh run clears ``root`` instead."""
    if not cfg.resume:
        storage.remove(root)
        return None
    found = checkpoint.latest(root)
    if found is None:
        raise TrainingFailed(f"--resume: no checkpoint under {root}")
    saved = checkpoint.position(found)["lineage"]
    if saved != cfg.lineage(gold):
        differ = {k: (saved.get(k), v) for k, v in cfg.lineage(gold).items() if saved.get(k) != v}
        raise TrainingFailed(f"--resume: {found} was trained with other settings (saved, now): {differ}")
    missing = checkpoint.missing_rng_states(found, cfg.num_processes)
    if missing:
        raise TrainingFailed(
            f"--resume: {found} lacks the RNG state of rank(s) {missing}, so it cannot be resumed exactly; "
            "train again without --resume"
        )
    log.info("resuming from %s", found)
    return found


def check_task_slots(spark: SparkSession, cfg: TrainConfig) -> None:
    """Fail fast: TorchDistributor waits forever for barrier slots that do not exist."""
    if cfg.local_mode:
        return
    slots = spark.sparkContext.defaultParallelism
    if cfg.num_processes > slots:
        raise TrainingFailed(f"num_processes={cfg.num_processes} exceeds the cluster's {slots} task slots")


def verify(result: dict | None, cfg: TrainConfig, model_dir: str) -> dict:
    """Rank 0's result, if every rank confirmed it and the model was written."""
    if (
        not result
        or result.get("ranks_confirmed") != cfg.num_processes
        or result.get("world_size") != cfg.num_processes
    ):
        raise TrainingFailed(f"training returned no confirmed result from all {cfg.num_processes} ranks: {result!r}")
    if not storage.is_file(storage.join(model_dir, "config.json")):
        raise TrainingFailed(f"training finished but wrote no model to {model_dir}")
    return result


def training_spec(
    cfg: TrainConfig,
    gold: dict,
    work: WorkDir,
    *,
    data: GoldData,
    train_rows: int,
    resume_from: str | None,
    mlflow_run_id: str | None,
    trial: dict | None = None,
    under: tuple[str, ...] = (),
) -> TrainSpec:
    """What ``train_fn`` gets: the config, what the data defines, the DP plan and where to write
    (``under`` the work dir: a tuning trial writes in its own folder)."""
    return TrainSpec(
        train=cfg,
        **asdict(data),
        train_rows=train_rows,
        model_dir=work.path(*under, "model"),
        checkpoint_dir=work.path(*under, CHECKPOINTS),
        lineage=cfg.lineage(gold),
        failure_dir=work.path(*under, FAILURES),
        resume_from=resume_from,
        mlflow_run_id=mlflow_run_id,
        privacy=privacy_plan(cfg, train_rows),
        trial=trial,
    )


def privacy_plan(cfg: TrainConfig, train_rows: int):
    """DP-SGD's ``PrivacyPlan`` for ``train.dp_epsilon`` over every epoch's steps (None without it)."""
    if cfg.dp_epsilon is None:
        return None
    from tokenlake.training.privacy import plan

    per_epoch = steps_per_epoch(train_rows, cfg.rank_batch, cfg.num_processes)
    return plan(epsilon=cfg.dp_epsilon, delta=cfg.dp_delta, max_grad_norm=cfg.dp_max_grad_norm,
                train_rows=train_rows, global_batch=cfg.global_batch,
                steps=per_epoch * cfg.epochs)  # fmt: skip


def train_without_spark(
    gold: dict,
    work: WorkDir | Path,
    cfg: TrainConfig,
    data: GoldData,
    *,
    mlflow_run_id: str | None = None,
    first_rows: dict[str, int] | None = None,
) -> dict:
    """``train_fn`` on the gold version's Parquet files, read through its Delta log: in this
    process alone, or as one rank of a ``torchrun`` job (its environment sets the ranks). No
    Spark, no Java: for GPU machines. ``first_rows``: keep only the first N rows of a split
    (``benchmarks/gpu.py``)."""
    if first_rows and cfg.resume:
        raise TrainingFailed("a run on the first rows of gold cannot resume: its checkpoints belong to other data")
    started, work = time.time(), WorkDir.of(work)
    with _world_of_one():
        return _train_without_spark(gold, work, cfg, data, started, mlflow_run_id, first_rows or {})


@contextlib.contextmanager
def _world_of_one():
    """Outside ``torchrun`` (no ``RANK`` in the environment), this process is a world of one while
    it trains; the environment is given back after, so that nothing later inherits its port."""
    if "RANK" in os.environ:
        yield
        return
    world = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": os.environ.get("MASTER_PORT", str(_free_port()))}  # fmt: skip
    before = {k: os.environ.get(k) for k in world}
    os.environ.update(world)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _train_without_spark(
    gold: dict,
    work: WorkDir,
    cfg: TrainConfig,
    data: GoldData,
    started: float,
    mlflow_run_id: str | None,
    first_rows: dict[str, int],
) -> dict:
    from tokenlake.training.distributed import train_fn
    from tokenlake.training.gold_files import TensorSplit, load_gold

    rank = int(os.environ["RANK"])
    cfg = replace(cfg, num_processes=int(os.environ["WORLD_SIZE"]))
    resume_from = resume_point(work.path(CHECKPOINTS), cfg, gold) if rank == 0 or cfg.resume else None
    if rank == 0:
        storage.remove(work.path("model"))
    splits = {}
    for split in SPLITS:
        tensors = load_gold(gold["path"], gold["version"], split=split, max_len=data.max_len)
        splits[split] = TensorSplit({k: v[: first_rows.get(split)] for k, v in tensors.items()})
    spec = training_spec(cfg, gold, work, data=data, train_rows=len(splits["train"]), resume_from=resume_from,
                         mlflow_run_id=mlflow_run_id)  # fmt: skip
    log.info("training %s on %d rows, rank %d of %d, without Spark", cfg.model, len(splits["train"]), rank,
             cfg.num_processes)  # fmt: skip
    try:
        result = train_fn(spec, splits)
    except Exception as exc:  # as with TorchDistributor: exit 6 and what the rank said, not a traceback
        raise TrainingFailed(f"rank {rank} failed: {type(exc).__name__}: {error_cause(exc, 300)}") from exc
    if rank != 0:
        return result
    return started_result(verify(result, cfg, work.path("model")), started, {"read": "in_memory", "copy_bytes": 0})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_training(
    spark: SparkSession,
    gold: dict,
    work: WorkDir | Path,
    cfg: TrainConfig,
    data: GoldData,
    *,
    mlflow_run_id: str | None = None,
    trial: dict | None = None,
    under: tuple[str, ...] = (),
) -> dict:
    """Train on the gold table ``gold`` (``{"path", "version"}``); return rank 0's verified result.
    With ``cfg.resume``, continue from the latest checkpoint; otherwise old checkpoints are removed.
    ``trial``: an Optuna trial to report epochs to (``TrainSpec.trial``); ``under``: a folder of
    the work dir to write the model, checkpoints and failures in."""
    from pyspark.ml.torch.distributor import TorchDistributor

    from tokenlake.training.distributed import train_fn

    started, work = time.time(), WorkDir.of(work)
    check_task_slots(spark, cfg)
    files = version_files(spark, gold)
    splits, data_path = gold_splits(
        files, max_len=data.max_len, labelled="label" in parquet_columns(files[0]), world=cfg.num_processes
    )
    try:  # the ranks would refuse it too, but only after starting; say it here, as a clear error
        steps_per_epoch(len(splits["train"]), cfg.rank_batch, cfg.num_processes)
    except ValueError as exc:
        raise TrainingFailed(f"{exc}; lower --batch-size") from None
    # the data is usable: only now are the last run's checkpoints (unless resuming) and model removed
    resume_from = resume_point(work.path(*under, CHECKPOINTS), cfg, gold)
    model_dir = work.path(*under, "model")
    storage.remove(work.path("petastorm_cache"))  # the per-run copy of older versions
    storage.remove(model_dir)
    spec = training_spec(cfg, gold, work, data=data, train_rows=len(splits["train"]), resume_from=resume_from,
                         mlflow_run_id=mlflow_run_id, trial=trial, under=under)  # fmt: skip
    log.info("training %s on %d rows with %d processes, reading %d row groups of gold in place (rows per rank: %s)",
             cfg.model, spec.train_rows, cfg.num_processes, data_path["row_groups"],
             data_path["rows_per_rank"]["train"])  # fmt: skip
    storage.remove(spec.failure_dir)
    distributor = TorchDistributor(num_processes=cfg.num_processes, local_mode=cfg.local_mode, use_gpu=cfg.use_gpu)
    try:
        result = distributor.run(train_fn, spec, splits)
    except RuntimeError as exc:  # a rank died; TorchDistributor says only that, the rank said why
        log.error("%s", exc)
        raise TrainingFailed(f"a training process failed: {rank_failures(spec.failure_dir) or exc}") from None
    return started_result(verify(result, cfg, model_dir), started, data_path)


def version_files(spark: SparkSession, gold: dict) -> list[str]:
    """The Parquet files of the pinned gold version, from its Delta log read in Python (a fresh
    Spark session spent 8 s of a 24 s start-up listing them); where the log's first commits were
    cleaned up, Spark lists them from its checkpoint."""
    try:
        return sorted(delta_files(gold["path"], gold["version"]))
    except LogIncomplete:
        return sorted(read_table(spark, gold["path"], gold["version"]).inputFiles())


def rank_failures(failure_dir: str) -> str:
    """What the ranks that failed wrote (``train_fn``), one ``rank N: Error: message`` each."""
    names = [n for n in storage.names(failure_dir) if n.startswith("rank-") and n.endswith(".txt")]
    return "; ".join(f"rank {n[5:-4]}: {storage.read_text(storage.join(failure_dir, n)).strip()}" for n in names)


def started_result(result: dict, started: float, data_path: dict) -> dict:
    """Rank 0's result with the data path and ``startup_s``: from ``started`` (``time.time()`` when
    training began) to the end of the first optimizer step (``first_step_at``, rank 0's clock)."""
    first = result.get("first_step_at")
    return {**result, "data_path": data_path, "startup_s": round(first - started, 3) if first else None}
