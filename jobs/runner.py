"""The whole run, shared by ``tokenlake run`` and ``jobs/pipeline_job.py``: ETL, gate, training,
MLflow, ``report.json``. One MLflow run per call; it ends FAILED whenever the run does."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pyspark.sql import SparkSession

from etl.pipeline import EtlResult, run_etl
from etl.validate import ValidationFailed
from jobs.config import PipelineConfig
from training.launch import launch_training
from training.tracking import flatten, lineage_tags, log_training

log = logging.getLogger("tokenlake")
EXPERIMENT = "tokenlake"


def default_mlflow_uri(work: Path) -> str:
    return f"sqlite:///{(work / 'mlflow.db').resolve()}"


def _start_mlflow_run(uri: str, work: Path):
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = (work / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow.start_run()


def _validation_summary(etl: EtlResult) -> dict:
    suites = {}
    if etl.validation is not None:
        v = etl.validation
        suites[v.suite] = {"success": v.success, "evaluated": v.evaluated, "unexpected": v.unexpected,
                           "result_path": v.result_path}
    failed = etl.validation.failed_expectations if etl.validation else []
    return {"success": bool(etl.validation and etl.validation.success), "failed_expectations": failed,
            "suites": suites}


def write_report(work: Path, report: dict) -> Path:
    path = work / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def run_pipeline(spark: SparkSession, input_path: str, work: Path, cfg: PipelineConfig,
                 mlflow_uri: str | None = None) -> dict:
    """Run every stage on ``input_path``; write and return ``work/report.json``.

    Raises ``ValidationFailed`` (after writing the report) when gold fails its suite: no training.
    """
    import mlflow

    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"input": input_path}
    start = time.perf_counter()
    with _start_mlflow_run(mlflow_uri or default_mlflow_uri(work), work) as run:
        mlflow.log_params({**flatten("etl", cfg.as_dict()["etl"]), **flatten("train", cfg.as_dict()["train"])})
        mlflow.set_tags({"spark_master": spark.sparkContext.master, "world_size": str(cfg.train.num_processes)})
        try:
            etl = run_etl(spark, input_path, work, cfg.etl)
        except ValidationFailed as failure:
            etl = failure.etl_result
            report.update(_etl_report(etl), training=None)
            write_report(work, report)
            mlflow.set_tags(lineage_tags(etl.tables, report["validation"], etl.tokenizer_fingerprint))
            mlflow.end_run(status="FAILED")
            raise
        report.update(_etl_report(etl))
        mlflow.set_tags(lineage_tags(etl.tables, report["validation"], etl.tokenizer_fingerprint))
        mlflow.log_dict(report["validation"], "validation/summary.json")
        if etl.validation and etl.validation.result_path:
            mlflow.log_artifact(etl.validation.result_path, artifact_path="validation")
        mlflow.log_metrics({f"rows_{k}": v for k, v in etl.rows.items()})
        t0 = time.perf_counter()
        result = launch_training(spark, etl.tables["gold"], work, cfg.train, labels=etl.labels,
                                 vocab_size=etl.vocab_size, max_len=cfg.etl.max_len)
        log_training(result, work / "model", Path(etl.tokenizer_dir))
        report["timings_s"]["train"] = round(time.perf_counter() - t0, 3)
        last = result["history"][-1]
        report["training"] = {"mlflow_run_id": run.info.run_id, "metrics": {
            "val_accuracy": last["val_accuracy"], "val_macro_f1": last["val_macro_f1"],
            "test_accuracy": result["test"]["accuracy"], "test_macro_f1": result["test"]["macro_f1"],
            "test_loss": result["test"]["loss"]}, "epochs": result["history"]}
        report["timings_s"]["total"] = round(time.perf_counter() - start, 3)
        write_report(work, report)
        mlflow.log_dict(report, "report.json")
    return report


def _etl_report(etl: EtlResult) -> dict:
    return {"rows": etl.rows, "reject_reasons": etl.reject_reasons, "tables": etl.tables,
            "validation": _validation_summary(etl), "timings_s": dict(etl.timings_s),
            "tokenizer": {"path": etl.tokenizer_dir, "fingerprint": etl.tokenizer_fingerprint,
                          "labels": etl.labels}}
