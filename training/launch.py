"""Driver side of training: gold Delta version -> Petastorm converters -> TorchDistributor.

The gold table is read at the version the ETL published (time travel), each split is
materialised once by Petastorm under the work dir, and the cache is deleted afterwards, also when
training fails. A result is trusted only if every rank confirmed rank 0's broadcast.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.lake import read_table
from etl.split import SPLITS
from training import checkpoint
from training.config import TrainConfig
from training.data import steps_per_epoch

log = logging.getLogger("tokenlake.train")


class TrainingFailed(RuntimeError):
    """Training did not produce a result that every rank confirmed."""


def padded_frame(gold: DataFrame, split: str, max_len: int, partitions: int) -> DataFrame:
    """One split as fixed-length ``input_ids`` (zero-padded to ``max_len``), ``n_tokens`` and, for
    classification, ``label``. Rows go to partitions (so Petastorm files and shards) by a hash of
    their id and are sorted by it inside each, so a gold version always yields the same files
    whatever order Spark read it in: the seed alone then decides the training order."""
    pad = F.array_repeat(F.lit(0), F.lit(max_len) - F.col("n_tokens"))
    label = ["label"] if "label" in gold.columns else []
    return (
        gold.where(F.col("split") == split)
        .repartition(partitions, F.xxhash64("id"))
        .sortWithinPartitions("id")
        .select(F.concat("input_ids", pad).alias("input_ids"), "n_tokens", *label)
    )


CHECKPOINTS = "checkpoints"


def resume_point(root: Path, cfg: TrainConfig, gold: dict) -> str | None:
    """The checkpoint to resume from (``cfg.resume``), after checking it belongs to this data and
    these settings; a fresh run clears ``root`` instead."""
    if not cfg.resume:
        shutil.rmtree(root, ignore_errors=True)
        return None
    found = checkpoint.latest(root)
    if found is None:
        raise TrainingFailed(f"--resume: no checkpoint under {root}")
    saved = checkpoint.position(found)["lineage"]
    if saved != cfg.lineage(gold):
        differ = {k: (saved.get(k), v) for k, v in cfg.lineage(gold).items() if saved.get(k) != v}
        raise TrainingFailed(f"--resume: {found} was trained with other settings (saved, now): {differ}")
    log.info("resuming from %s", found)
    return str(found)


def check_task_slots(spark: SparkSession, cfg: TrainConfig) -> None:
    """Fail fast: TorchDistributor waits forever for barrier slots that do not exist."""
    if cfg.local_mode:
        return
    slots = spark.sparkContext.defaultParallelism
    if cfg.num_processes > slots:
        raise TrainingFailed(f"num_processes={cfg.num_processes} exceeds the cluster's {slots} task slots")


def verify(result: dict | None, cfg: TrainConfig, model_dir: Path) -> dict:
    """Rank 0's result, if every rank confirmed it and the model was written."""
    if (
        not result
        or result.get("ranks_confirmed") != cfg.num_processes
        or result.get("world_size") != cfg.num_processes
    ):
        raise TrainingFailed(f"training returned no confirmed result from all {cfg.num_processes} ranks: {result!r}")
    if not (model_dir / "config.json").is_file():
        raise TrainingFailed(f"training finished but wrote no model to {model_dir}")
    return result


def training_spec(
    cfg: TrainConfig, gold: dict, work: Path, *, data: dict, resume_from: str | None, mlflow_run_id: str | None
) -> dict:
    """What ``train_fn`` gets: the config, what the data defines (``data``: task, labels,
    vocab_size, max_len, train_rows) and where to write."""
    return {
        **asdict(cfg),
        **data,
        "lr": cfg.peak_lr,
        "model_dir": str(work / "model"),
        "checkpoint_dir": str(work / CHECKPOINTS),
        "resume_from": resume_from,
        "lineage": cfg.lineage(gold),
        "mlflow_run_id": mlflow_run_id,
    }


def train_without_spark(
    gold: dict,
    work: Path,
    cfg: TrainConfig,
    *,
    task: str,
    labels: list[str],
    vocab_size: int,
    max_len: int,
    mlflow_run_id: str | None = None,
) -> dict:
    """``train_fn`` on the gold version's Parquet files, read through its Delta log: in this
    process alone, or as one rank of a ``torchrun`` job (its environment sets the ranks). No
    Spark, no Java: for GPU machines."""
    import os

    from training.distributed import train_fn
    from training.gold_files import TensorSplit, load_gold

    if "RANK" not in os.environ:  # a single process is a world of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", str(_free_port())))  # fmt: skip
    rank = int(os.environ["RANK"])
    cfg = replace(cfg, num_processes=int(os.environ["WORLD_SIZE"]))
    resume_from = resume_point(work / CHECKPOINTS, cfg, gold) if rank == 0 or cfg.resume else None
    if rank == 0:
        shutil.rmtree(work / "model", ignore_errors=True)
    splits = {s: TensorSplit(load_gold(gold["path"], gold["version"], split=s, max_len=max_len)) for s in SPLITS}
    data = {"task": task, "labels": labels, "vocab_size": vocab_size, "max_len": max_len,
            "train_rows": len(splits["train"])}  # fmt: skip
    spec = training_spec(cfg, gold, work, data=data, resume_from=resume_from, mlflow_run_id=mlflow_run_id)
    log.info("training %s on %d rows, rank %d of %d, without Spark", cfg.model, len(splits["train"]), rank,
             cfg.num_processes)  # fmt: skip
    result = train_fn(spec, splits)
    return verify(result, cfg, work / "model") if rank == 0 else result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_training(
    spark: SparkSession,
    gold: dict,
    work: Path,
    cfg: TrainConfig,
    *,
    task: str,
    labels: list[str],
    vocab_size: int,
    max_len: int,
    mlflow_run_id: str | None = None,
) -> dict:
    """Train on the gold table ``gold`` (``{"path", "version"}``); return rank 0's verified result.
    With ``cfg.resume``, continue from the latest checkpoint; otherwise old checkpoints are removed."""
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.ml.torch.distributor import TorchDistributor

    from training.distributed import train_fn

    check_task_slots(spark, cfg)
    resume_from = resume_point(work / CHECKPOINTS, cfg, gold)
    cache, model_dir = work / "petastorm_cache", work / "model"
    shutil.rmtree(cache, ignore_errors=True)  # left behind by a killed driver
    cache.mkdir(parents=True)
    shutil.rmtree(model_dir, ignore_errors=True)
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache.resolve().as_uri())
    table = read_table(spark, gold["path"], gold["version"])
    converters = {}
    try:
        for split in SPLITS:
            converters[split] = make_spark_converter(padded_frame(table, split, max_len, 2 * cfg.num_processes))
            if len(converters[split]) < 2 * cfg.num_processes:
                raise TrainingFailed(
                    f"the {split} split has {len(converters[split])} rows; "
                    f"{2 * cfg.num_processes} at least are needed for {cfg.num_processes} ranks"
                )
        try:  # the ranks would refuse it too, but only after starting; say it here, as a clear error
            steps_per_epoch(len(converters["train"]), cfg.batch_size, cfg.num_processes)
        except ValueError as exc:
            raise TrainingFailed(f"{exc}; lower --batch-size") from None
        spec = training_spec(cfg, gold, work, data={"task": task, "labels": labels, "vocab_size": vocab_size,
                             "max_len": max_len, "train_rows": len(converters["train"])},
                             resume_from=resume_from, mlflow_run_id=mlflow_run_id)  # fmt: skip
        log.info("training %s on %d rows with %d processes", cfg.model, spec["train_rows"], cfg.num_processes)
        result = TorchDistributor(num_processes=cfg.num_processes, local_mode=cfg.local_mode, use_gpu=cfg.use_gpu).run(
            train_fn, spec, converters
        )
        return verify(result, cfg, model_dir)
    finally:
        for converter in converters.values():
            converter.delete()
        shutil.rmtree(cache, ignore_errors=True)
