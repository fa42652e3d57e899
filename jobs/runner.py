"""The stages as the CLI and the jobs run them: ``etl``, ``validate``, ``train``, and ``run`` (all
three in one MLflow run). Each stage merges its part into ``WORK/report.json`` (``jobs.report``);
training takes only a gold version ``jobs.gold_trust`` accepts.

``work`` is a ``WorkDir`` (or a path, made one): the lake, checkpoints and model at its URI, the
report, tokenizer and validation results in its local copy (``etl.storage``), which the caller
pulls before a command and pushes after it."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from pyspark.sql import SparkSession

from tokenlake.etl.config import Task
from tokenlake.etl.context import row_params, suite_params
from tokenlake.etl.gold import GoldCommit
from tokenlake.etl.lake import commit_metadata, latest_version, read_table
from tokenlake.etl.pipeline import run_etl
from tokenlake.etl.storage import WorkDir
from tokenlake.etl.validate import (
    ValidationFailed,
    build_data_docs,
    gx_context,
    validate_table,
)
from tokenlake.jobs.config import PipelineConfig
from tokenlake.jobs.fairness import fairness_stage
from tokenlake.jobs.gold_trust import check_model_tokenizer, gold_path, parse_commit, usable_gold, usable_gold_files
from tokenlake.jobs.mlflow_run import mlflow_run, set_stage
from tokenlake.jobs.release import release_classifier
from tokenlake.jobs.report import etl_report, read_report, update_report, validation_summary
from tokenlake.training.baseline import train_baseline
from tokenlake.training.config import GoldData
from tokenlake.training.epochs import EVAL_KEYS
from tokenlake.training.launch import launch_training, train_without_spark
from tokenlake.training.privacy import PrivacyPlan
from tokenlake.training.privacy import report as privacy_report
from tokenlake.training.tracking import lineage_tags, log_causal_lm, log_delta_inputs, log_training

log = logging.getLogger("tokenlake")


def run_etl_stage(spark: SparkSession, input_path: str, work: WorkDir | Path, cfg: PipelineConfig) -> dict:
    """Ingest to a validated, published gold table. On a failed suite the report is written first,
    then ``ValidationFailed`` propagates (carrying the report)."""
    work = WorkDir.of(work)
    try:
        etl = run_etl(spark, input_path, work, cfg.etl)
    except ValidationFailed as failure:
        failure.report = update_report(work, **etl_report(input_path, work, failure.etl_result, cfg.etl))
        raise
    return update_report(work, **etl_report(input_path, work, etl, cfg.etl))


def run_validate_stage(
    spark: SparkSession, work: WorkDir | Path, cfg: PipelineConfig, version: int | None = None
) -> dict:
    """Re-validate published tables: gold at ``version`` alone if given, else every table of the
    last ETL report at its reported version. ``ValidationFailed`` if any no longer passes."""
    work = WorkDir.of(work)
    tables = read_report(work).get("tables", {})
    if version is not None or not tables:
        path = gold_path(work)
        tables = {"gold": {"path": path, "version": latest_version(spark, path) if version is None else version}}
    results, start, gx = [], time.perf_counter(), gx_context(work.local / "validation")
    for name, table in sorted(tables.items()):
        df = read_table(spark, table["path"], table["version"])
        etl_cfg, extra = cfg.etl, {}
        if name == "gold":  # the gold commit records what its suite must check
            meta = commit_metadata(spark, table["path"], table["version"])
            commit = parse_commit(table["path"], table["version"], meta)
            etl_cfg = replace(
                cfg.etl, max_len=commit.max_len, task=commit.task, split_fractions=tuple(commit.split_fractions)
            )
            extra = {"vocab_size": commit.vocab_size, "labels": commit.labels}
        results.append(
            validate_table(
                df,
                name,
                params=suite_params(name, etl_cfg, **extra),
                row_params=row_params(name, etl_cfg),
                task=etl_cfg.task,
                results_dir=work.local / "validation",
                suite_dir=cfg.etl.expectations_dir or None,
                docs=False,
                context=gx,
            )
        )
    build_data_docs(work.local / "validation", gx)
    timings = {**read_report(work).get("timings_s", {}), "validate_published": round(time.perf_counter() - start, 3)}
    report = update_report(work, validation=validation_summary(results, work, tables), timings_s=timings)
    failed = next((r for r in results if not r.success), None)
    if failed:
        failure = ValidationFailed(failed)
        failure.report = report
        raise failure
    return report


def train_stage(spark: SparkSession, work: WorkDir | Path, cfg: PipelineConfig, version: int | None = None) -> dict:
    """Train on a usable gold version inside the active MLflow run; merge ``training`` into the report."""
    work = WorkDir.of(work)
    gold, commit = usable_gold(spark, work, version)
    check_model_tokenizer(cfg, commit)

    def launch(data: GoldData, mlflow_run_id: str) -> dict:
        return launch_training(spark, gold, work, cfg.train, data, mlflow_run_id=mlflow_run_id)

    return _train(work, cfg, gold, commit, launch, spark)


def run_train_without_spark(
    work: WorkDir | Path,
    cfg: PipelineConfig,
    version: int | None = None,
    mlflow_uri: str | None = None,
    data: str | None = None,
) -> dict:
    """``tokenlake train --no-spark [--data DIR]``: the same training loop on the gold files, in this
    process or as a ``torchrun`` rank; rank 0 alone logs to MLflow and writes the report."""
    work = WorkDir.of(work)
    gold, commit = usable_gold_files(work, str(data or gold_path(work)), version)
    check_model_tokenizer(cfg, commit)

    def launch(data: GoldData, mlflow_run_id: str | None) -> dict:
        return train_without_spark(gold, work, cfg.train, data, mlflow_run_id=mlflow_run_id)

    if int(os.environ.get("RANK", "0")) != 0:
        launch(GoldData.of_commit(commit), None)
        return {}
    with mlflow_run(mlflow_uri, work, None, cfg):
        return _train(work, cfg, gold, commit, launch, None)


def _train(
    work: WorkDir, cfg: PipelineConfig, gold: dict, commit: GoldCommit, launch, spark: SparkSession | None
) -> dict:
    import mlflow

    set_stage("train")
    report = read_report(work)
    tables = {**report.get("tables", {}), "gold": gold}
    mlflow.set_tags(lineage_tags(tables, report.get("validation"), commit.tokenizer_fingerprint))
    log_delta_inputs(tables)
    if report.get("input"):
        mlflow.set_tag("input", report["input"])
    if report.get("validation"):
        mlflow.log_dict(report["validation"], "validation/summary.json")
    for suite in (report.get("validation") or {}).get("suites", {}).values():
        result_file = work.staged(suite.get("result_path"))
        if result_file and result_file.is_file():
            mlflow.log_artifact(str(result_file), artifact_path="validation")
    docs = work.staged((report.get("validation") or {}).get("data_docs"))
    if docs and docs.is_file():
        mlflow.log_artifacts(str(docs.parent), artifact_path="validation/data_docs")
    start = time.perf_counter()
    data = GoldData.of_commit(commit)
    task = data.task
    result = launch(data, mlflow.active_run().info.run_id)
    log_training(result, commit.labels)
    last, keys = result["history"][-1], EVAL_KEYS[task]
    metrics = {**{f"val_{k}": last[f"val_{k}"] for k in keys}, **{f"test_{k}": result["test"][k] for k in keys}}
    silver = report.get("tables", {}).get("silver")
    if task == Task.CLASSIFICATION and cfg.train.baseline and silver and spark is not None:
        baseline = train_baseline(read_table(spark, silver["path"], silver["version"]), commit.labels)
        metrics |= {
            "baseline_test_accuracy": baseline["test_accuracy"],
            "baseline_test_macro_f1": baseline["test_macro_f1"],
        }
        logged = {"baseline_reg_param": baseline["reg_param"], "baseline_features": baseline["features"]}
        mlflow.log_metrics({**{k: v for k, v in metrics.items() if k.startswith("baseline_")}, **logged})
        mlflow.set_tag("baseline", f"MLlib TF-IDF (word 1-2 grams) + logistic regression, L2 tuned on validation, "
                       f"on silver v{silver['version']}")  # fmt: skip
    if task == Task.CLASSIFICATION:
        registry = release_classifier(work, cfg, commit, tables, metrics, report.get("etl_config"))
        model_uri = registry.pop("model_uri")
    else:
        registry, model_uri = None, log_causal_lm(work.path("model"))
    mlflow.log_artifacts(str(work.local / "tokenizer"), artifact_path="tokenizer")
    best_epoch = min(result["history"], key=lambda h: h["val_loss"])["epoch"]
    run_id = mlflow.active_run().info.run_id
    training = {
        "mlflow_run_id": run_id,
        "mlflow_tracking_uri": mlflow.get_tracking_uri(),
        "model": {
            "path": work.path("model"),
            "mlflow_uri": f"runs:/{run_id}/model",
            "logged_model_uri": model_uri,
            "epoch": result["history"][-1]["epoch"],
            "is_best_epoch": result["history"][-1]["epoch"] == best_epoch,
        },
        "lr": cfg.train.peak_lr,
        "trainable_layers": cfg.train.top_layers,
        "data": gold,
        "task": task,
        "metrics": metrics,
        "epochs": result["history"],
        "stopped_early": len(result["history"]) < cfg.train.epochs,
        "best_epoch": best_epoch,
        "startup_s": result["startup_s"],
        "data_copy_bytes": result["data_path"]["copy_bytes"],
        "data_path": result["data_path"],
    }
    if result.get("privacy"):
        from_data = commit.tokenizer_source.startswith("trained:")
        plan = PrivacyPlan(**result["privacy"])
        training["privacy"] = privacy_report(plan, result["privacy_history"], tokenizer_from_data=from_data)
        mlflow.log_metrics({f"dp_{k}": training["privacy"][k] for k in ("epsilon", "delta", "noise_multiplier")})
        mlflow.set_tag("dp.tokenizer_from_data", str(training["privacy"]["tokenizer_from_data"]).lower())
    if result.get("stopped"):
        training["stopped_by"] = result["stopped"]
    fairness = None
    if task == Task.CLASSIFICATION and cfg.train.fairness_group and silver and spark is not None:
        fairness = fairness_stage(spark, work, cfg, commit, silver, report.get("etl_config"))
    mlflow.set_tags({k: str(training[k]).lower() for k in ("stopped_early", "best_epoch")})
    if training["startup_s"] is not None:
        mlflow.log_metric("startup_s", training["startup_s"])
    timings = {**report.get("timings_s", {}), "train": round(time.perf_counter() - start, 3)}
    report = update_report(work, training=training, registry=registry, fairness=fairness, timings_s=timings)
    mlflow.log_dict(report, "report.json")
    return report


def run_train(
    spark: SparkSession,
    work: WorkDir | Path,
    cfg: PipelineConfig,
    version: int | None = None,
    mlflow_uri: str | None = None,
) -> dict:
    """``tokenlake train``: one MLflow run that trains on gold (latest or ``version``)."""
    work = WorkDir.of(work)
    with mlflow_run(mlflow_uri, work, spark, cfg):
        return train_stage(spark, work, cfg, version)


def run_pipeline(
    spark: SparkSession, input_path: str, work: WorkDir | Path, cfg: PipelineConfig, mlflow_uri: str | None = None
) -> dict:
    """``tokenlake run``: ETL, gate and training in one MLflow run, which ends FAILED if any fails."""
    import mlflow

    work = WorkDir.of(work)
    report = read_report(work)
    gold = report.get("tables", {}).get("gold")
    if cfg.train.resume and gold and (report.get("validation") or {}).get("success"):
        log.info("--resume: training continues on gold v%s; the ETL is not run again", gold["version"])
        with mlflow_run(mlflow_uri, work, spark, cfg):
            return train_stage(spark, work, cfg, gold["version"])
    (work.local / "report.json").unlink(missing_ok=True)
    start = time.perf_counter()
    with mlflow_run(mlflow_uri, work, spark, cfg):
        try:
            set_stage("etl")
            report = run_etl_stage(spark, input_path, work, cfg)
        except ValidationFailed as failure:
            mlflow.set_tags(
                lineage_tags(
                    failure.report["tables"], failure.report["validation"], failure.report["tokenizer"]["fingerprint"]
                )
            )
            raise
        mlflow.log_metrics({f"rows_{k}": v for k, v in report["rows"].items()})
        work.push()  # the published lake's report and tokenizer, before training starts
        report = train_stage(spark, work, cfg, report["tables"]["gold"]["version"])
        return update_report(work, timings_s={**report["timings_s"], "total": round(time.perf_counter() - start, 3)})
