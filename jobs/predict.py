"""``tokenlake predict``: score any input the ETL reads (files, or a Delta table at a version) with a
logged classifier, in Spark, into a Delta table; rows that cannot be scored go to its quarantine.

The model brings its tokenizer, labels, ``max_len`` and the ETL settings that shaped its training
text (``training.packaging``); the input is parsed, cleaned and PII-masked as the ETL did, then
scored by ``training.inference``. On every run read = scored + quarantined, exactly; the run
writes ``WORK/predict_report.json``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tokenlake.etl.clean import clean_docs
from tokenlake.etl.config import EtlConfig
from tokenlake.etl.formats import decode_text, unknown_format
from tokenlake.etl.ingest import MISSING_TEXT, TEXT_NOT_STRING, parse_records
from tokenlake.etl.lake import read_table, table_exists, write_table
from tokenlake.etl.pii import mask_pii, pii_secret
from tokenlake.etl.sources import read_sources, with_source_line
from tokenlake.etl.storage import WorkDir, write_text
from tokenlake.training.baseline import confusion_scores
from tokenlake.training.inference import score_frame
from tokenlake.training.packaging import INPUT_SETTINGS, ModelUnusable, resolve_model

log = logging.getLogger("tokenlake")
REPORT = "predict_report.json"
_PERSIST = StorageLevel.MEMORY_AND_DISK


class PredictInputError(ValueError):
    """The input cannot be scored at all (a Delta table without the text column, ...)."""


def split_version(path: str) -> tuple[str, int | None]:
    """``table@3`` -> ``("table", 3)``; any other path -> ``(path, None)``."""
    match = re.fullmatch(r"(.+)@(\d+)", path)
    return (match.group(1), int(match.group(2))) if match else (path, None)


def read_input(spark: SparkSession, path: str, settings: dict) -> DataFrame:
    """``id, text, label, source_file, source_line, raw, reject_reason, stage`` for every input row:
    files as the ETL's ingest parses them (no label required), or a Delta table's rows, the text
    decoded as the model's ``text_format`` says (a model from before it: ``auto``)."""
    table, version = split_version(path)
    if (
        version is not None
        or ("://" not in path and (Path(path) / "_delta_log").is_dir())
        or ("://" in path and table_exists(spark, path))
    ):
        return _read_delta(spark, table, version, settings)
    text_format = settings.get("text_format", "auto")
    sources = read_sources(spark, path, text_column=settings["text_column"], id_column=settings["id_column"],
                           unknown=unknown_format(text_format))  # fmt: skip
    parsed = parse_records(
        sources,
        text_column=settings["text_column"],
        label_column=settings["label_column"],
        id_column=settings["id_column"],
        require_label=False,
    ).transform(decode_text, text_format=text_format, where=~F.col("_decoded"))
    return with_source_line(parsed).select("id", "text", "label", "source_file", "source_line", "raw",
                                           "reject_reason")  # fmt: skip


def _read_delta(spark: SparkSession, table: str, version: int | None, settings: dict) -> DataFrame:
    df = read_table(spark, table, version)
    text, label, id_ = settings["text_column"], settings["label_column"], settings["id_column"]
    if text not in df.columns:
        raise PredictInputError(f"{table} has no column {text!r} (its columns: {', '.join(df.columns)}); "
                                "name the text with --text-column")  # fmt: skip
    is_string = dict(df.dtypes)[text] == "string"
    text_col = F.col(f"`{text}`") if is_string else F.lit(None).cast("string")
    return df.select(
        (F.col(f"`{id_}`").cast("string") if id_ in df.columns else F.sha2(text_col, 256)).alias("id"),
        text_col.alias("text"),
        (F.col(f"`{label}`").cast("string") if label in df.columns else F.lit(None).cast("string")).alias("label"),
        F.lit(f"{table}@{version}" if version is not None else table).alias("source_file"),
        F.lit(None).cast("long").alias("source_line"),
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])).alias("raw"),
        (F.when(F.col(f"`{text}`").isNull(), F.lit(MISSING_TEXT)) if is_string else F.lit(TEXT_NOT_STRING))
        .cast("string")
        .alias("reject_reason"),
    ).transform(decode_text, text_format=settings.get("text_format", "auto"))


def input_settings(meta: dict, overrides: dict) -> dict:
    """The ETL settings the model recorded (``meta``: its ``tokenlake.json``), with any the caller set
    explicitly (``--set``, ``--config``); a setting neither gives has the ETL's default."""
    defaults = EtlConfig()
    recorded = {**{k: getattr(defaults, k) for k in INPUT_SETTINGS}, **meta["etl"]}
    return {**recorded, **{k: v for k, v in overrides.items() if k in INPUT_SETTINGS}}


def run_predict(
    spark: SparkSession,
    *,
    model: str,
    input_path: str,
    work: WorkDir | Path,
    output: str | None = None,
    batch_size: int = 32,
    overrides: dict | None = None,
) -> dict:
    """Score ``input_path`` with ``model`` into the Delta table ``output`` (default WORK/predictions)
    and its quarantine (``OUTPUT_quarantine``); write and return ``WORK/predict_report.json``."""
    work = WorkDir.of(work)
    output = (output or work.path("predictions")).rstrip("/")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tokenlake-predict-") as tmp:
        identity, found, meta = resolve_model(model, Path(tmp) / "download")
        settings = input_settings(meta, overrides or {})
        if settings["pseudonymise_pii"]:
            try:
                pii_secret()  # the model saw pseudonyms made with a key: without it, fail now, not mid-run
            except ValueError as exc:
                raise ModelUnusable(f"--model {model} was trained on pseudonymised text: {exc}") from None
        # a name of its own: Spark ships one file per name for the whole session
        bundle = Path(shutil.copytree(found, Path(tmp) / f"bundle-{uuid.uuid4().hex[:12]}"))
        report = _predict(spark, bundle, meta, settings, identity, input_path, output, batch_size)
    report["timings_s"] = {"predict": round(time.perf_counter() - start, 3)}
    write_text(work.local / REPORT, json.dumps(report, indent=2) + "\n")
    return report


def _predict(spark, bundle: Path, meta: dict, settings: dict, identity: dict, input_path: str, output: str,
             batch_size: int) -> dict:  # fmt: skip
    model = identity["uri"]
    labels = meta["labels"]

    rows = read_input(spark, input_path, settings).withColumn(
        "stage", F.when(F.col("reject_reason").isNotNull(), F.lit("ingest"))
    )
    kept = F.col("reject_reason").isNull()
    cleaned = (
        rows.transform(clean_docs, max_doc_chars=settings["max_doc_chars"], url_mode=settings["url_mode"])
        .withColumn("stage", F.coalesce("stage", F.when(~kept, F.lit("clean"))))
        .transform(mask_pii, pseudonymise=settings["pseudonymise_pii"], where=kept)
        .persist(_PERSIST)
    )
    scored = None
    try:
        reasons = {r["reject_reason"]: r["count"] for r in cleaned.groupBy("reject_reason").count().collect()}
        usable = reasons.pop(None, 0)
        read, n_quarantined = usable + sum(reasons.values()), sum(reasons.values())
        raw = F.substring("raw", 1, EtlConfig().raw_keep_chars).alias("raw")  # as the ETL's quarantine keeps it
        quarantine = cleaned.where(~kept).select("id", "reject_reason", "stage", "source_file", "source_line", raw)
        to_score = cleaned.where(kept).select("id", "text", F.col("label").alias("input_label"))
        scored = score_frame(to_score, bundle, labels, batch_size=batch_size).persist(_PERSIST)  # scored once
        metrics = _metrics(scored, labels)
        n_scored = scored.count()
        if n_scored != usable:  # the one place a row could be lost or doubled: the scoring UDF
            raise AssertionError(f"predict lost rows: read {read} != scored {n_scored} + quarantined {n_quarantined}")
        commit = {"model_uri": model, "model_version": identity["version"], "model_run_id": identity["run_id"],
                  "input": input_path, "gold": meta.get("gold")}  # fmt: skip
        version = write_table(scored.drop("input_label"), output, metadata=commit)
        quarantine_path = f"{output}_quarantine"
        quarantine_version = write_table(quarantine, quarantine_path, metadata=commit)
    finally:  # on success and on failure alike: a long-lived session keeps nothing of this run
        cleaned.unpersist()
        if scored is not None:
            scored.unpersist()
    report = {
        "input": input_path,
        "rows": {"read": read, "scored": n_scored, "quarantined": n_quarantined},
        "reject_reasons": reasons,
        "output": {"path": output, "version": version},
        "quarantine": {"path": quarantine_path, "version": quarantine_version},
        "model": {
            "uri": model,
            "version": identity["version"],
            "run_id": identity["run_id"],
            "labels": labels,
            "max_len": meta["max_len"],
            "gold": meta.get("gold"),
        },
        "settings": settings,
        **({"metrics": metrics} if metrics else {}),
    }
    log.info("predict: %d read, %d scored, %d quarantined -> %s v%d", read, n_scored, n_quarantined, output, version)
    return report


def _metrics(scored: DataFrame, labels: list[str]) -> dict | None:
    """``{"accuracy", "macro_f1", "rows"}`` over the scored rows whose input had a label (None if none had)."""
    known = {n: i for i, n in enumerate(labels)}
    pairs = scored.where(F.col("input_label").isNotNull()).groupBy("input_label", "label").count().collect()
    confusion: dict[tuple[int, int], int] = {}
    for row in pairs:  # an input label the model does not know counts as wrong
        key = (known.get(row["input_label"], -1), known[row["label"]])
        confusion[key] = confusion.get(key, 0) + row["count"]
    return confusion_scores(confusion, len(labels)) if confusion else None
