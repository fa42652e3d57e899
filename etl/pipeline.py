"""The ETL run: raw JSON Lines -> bronze -> silver -> gold, plus quarantine, each table
published (one Delta commit) only after it passed its Great Expectations suite.

Each stage is a DataFrame transform from its own module; this module only chains them, gates and
writes the tables and counts rows, so that read = clean + quarantined + duplicates_exact exactly.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.clean import CLEAN_REASONS, clean_docs
from etl.config import EtlConfig
from etl.dedup import mark_exact_duplicates, with_content_hash
from etl.ingest import INGEST_REASONS, flag_duplicate_ids, parse_records, read_jsonl
from etl.lake import TABLES, read_table, table_digest, write_table
from etl.pack import pack_blocks
from etl.pii import mask_pii, pii_counts
from etl.split import SPLITS, assign_split
from etl.tokenize import TOKENIZER_FILE, copy_tokenizer, save_tokenizer, tokenize_docs, train_tokenizer, vocab_size
from etl.validate import SuiteResult, ValidationFailed, preload, split_bounds, validate_table

log = logging.getLogger("tokenlake.etl")
QUARANTINE_COLUMNS = ["id", "reject_reason", "stage", "source_file", "raw"]
LABELS_FILE = "labels.json"
REJECT_REASONS = INGEST_REASONS + CLEAN_REASONS


@dataclass
class EtlResult:
    """What training needs from the ETL, and what the report says about it."""

    rows: dict[str, int]
    reject_reasons: dict[str, int]
    tables: dict[str, dict]
    timings_s: dict[str, float]
    tokenizer_dir: str = ""
    tokenizer_fingerprint: str = ""
    vocab_size: int = 0
    labels: list[str] = field(default_factory=list)
    validations: list[SuiteResult] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)
    packing: dict | None = None
    gold_digest: str = ""


@contextmanager
def _stage(name: str, timings: dict[str, float]):
    """Time a stage and print it; the stage may set ``progress["rows"]`` for a rows/s figure."""
    progress: dict[str, int] = {}
    start = time.perf_counter()
    yield progress
    seconds = time.perf_counter() - start
    timings[name] = round(seconds, 3)
    rows = progress.get("rows")
    rate = f"{rows:>10,} rows {rows / max(seconds, 1e-9):>10,.0f} rows/s" if rows is not None else ""
    log.info("stage %-9s %7.1f s %s", name, seconds, rate)


def _quarantine_rows(df: DataFrame, stage: str, raw_col: str, keep_chars: int) -> DataFrame:
    return df.where(F.col("reject_reason").isNotNull()).select(
        "id",
        "reject_reason",
        F.lit(stage).alias("stage"),
        "source_file",
        F.substring(raw_col, 1, keep_chars).alias("raw"),
    )


def label_names(silver: DataFrame) -> list[str]:
    """The label set, ordered numerically when every label is an integer, else by name."""
    names = [r[0] for r in silver.select("label").distinct().collect()]
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def tokenizer_sample(silver: DataFrame, n: int) -> list[str]:
    """``n`` train-split texts chosen by hash: the same sample on every run, never other splits."""
    rows = silver.where(F.col("split") == "train").orderBy(F.xxhash64("id"), "id").limit(n).select("text")
    return [r[0] for r in rows.toLocalIterator()]


def suite_params(suite: str, cfg: EtlConfig, rows: int, *, vocab_size: int = 0, labels: list | None = None) -> dict:
    """The run-time parameters of each table's suite."""
    if suite == "quarantine":
        return {"reject_reasons": list(REJECT_REASONS), "raw_keep_chars": cfg.raw_keep_chars}
    if suite == "silver":
        return split_bounds(cfg.split_fractions, rows)
    if suite == "gold":
        return {
            "max_len": cfg.max_len,
            "max_token_id": vocab_size - 1,
            "label_ids": list(range(len(labels or []))),
            **split_bounds(cfg.split_fractions, rows),
        }
    return {}


def _gate(df: DataFrame, suite: str, params: dict, work: Path, cfg: EtlConfig, result: EtlResult) -> None:
    """Validate ``df`` before it is published; a failed suite raises ``ValidationFailed``."""
    with _stage(f"validate_{suite}", result.timings_s):
        outcome = validate_table(
            df,
            suite,
            params=params,
            task=cfg.task,
            results_dir=work / "validation",
            suite_dir=cfg.expectations_dir or None,
        )
    result.validations.append(outcome)
    if not outcome.success:
        raise ValidationFailed(outcome, result)


def run_etl(spark: SparkSession, input_path: str, work: Path, cfg: EtlConfig) -> EtlResult:
    """Run every ETL stage, publishing each table only after it passed its suite; raise
    ``ValidationFailed`` at the first table that fails (nothing after it is written)."""
    paths = {t: str(work / "lake" / t) for t in TABLES}
    result = EtlResult(rows={}, reject_reasons={}, timings_s={}, tables={})
    timings = result.timings_s
    preload()
    with _stage("ingest", timings) as progress:
        parsed = parse_records(
            read_jsonl(spark, input_path), text_column=cfg.text_column, require_label=cfg.task == "classification"
        ).transform(flag_duplicate_ids)
        parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
        progress["rows"] = read = parsed.count()
        # From here on only the accepted rows and the rejects' quarantine rows are needed.
        bronze = (
            parsed.where(F.col("reject_reason").isNull())
            .select("id", "text", "label", "source_file")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        ingest_rejects = _quarantine_rows(parsed, "ingest", "raw", cfg.raw_keep_chars).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        bronze.count(), ingest_rejects.count()
        parsed.unpersist()
    _gate(bronze, "bronze", suite_params("bronze", cfg, 0), work, cfg, result)
    result.tables["bronze"] = {"path": paths["bronze"], "version": write_table(bronze, paths["bronze"])}
    bronze.unpersist()
    with _stage("clean", timings) as progress:
        cleaned = (
            read_table(spark, paths["bronze"], result.tables["bronze"]["version"])
            .withColumn("raw", F.col("text"))
            .withColumn("reject_reason", F.lit(None).cast("string"))
            .transform(clean_docs, max_doc_chars=cfg.max_doc_chars)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        kept = (
            cleaned.where(F.col("reject_reason").isNull())
            .transform(mask_pii)
            .transform(with_content_hash)
            .transform(mark_exact_duplicates)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        silver = (
            kept.where(~F.col("is_duplicate"))
            .transform(assign_split, fractions=cfg.split_fractions, salt=cfg.split_salt)
            .select("id", "text", "label", "split", "content_sha256", "source_file")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        silver.count()  # materialise the persisted frames now, so that this stage's timing is its own
        progress["rows"] = cleaned.count()
        duplicates = kept.where(F.col("is_duplicate")).count()
        # Only the rejected rows are needed from here on: keep them, free the full copies, so that
        # the silver gate scans silver from memory rather than from spilled blocks.
        quarantine = ingest_rejects.unionByName(_quarantine_rows(cleaned, "clean", "raw", cfg.raw_keep_chars)).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        quarantine.count()
        for df in (ingest_rejects, cleaned, kept):
            df.unpersist()
    _gate(quarantine, "quarantine", suite_params("quarantine", cfg, 0), work, cfg, result)
    result.tables["quarantine"] = {
        "path": paths["quarantine"],
        "version": write_table(quarantine, paths["quarantine"], mode="append"),
    }
    result.reject_reasons = {
        r["reject_reason"]: r["count"] for r in quarantine.groupBy("reject_reason").count().collect()
    }
    quarantine.unpersist()
    split_counts = {r["split"]: r["count"] for r in silver.groupBy("split").count().collect()}
    clean = sum(split_counts.values())
    result.rows = {
        "read": read,
        "quarantined": sum(result.reject_reasons.values()),
        "clean": clean,
        "duplicates_exact": duplicates,
        **{s: split_counts.get(s, 0) for s in SPLITS},
    }
    result.pii = pii_counts(silver)
    log.info("rows: %s", result.rows)
    _gate(silver, "silver", suite_params("silver", cfg, clean), work, cfg, result)
    result.tables["silver"] = {"path": paths["silver"], "version": write_table(silver, paths["silver"])}
    silver.unpersist()
    if result.rows["train"] == 0:
        raise ValueError(
            f"no usable training rows in {input_path}: rows {result.rows}, rejected {result.reject_reasons}"
        )
    _build_gold(
        read_table(spark, paths["silver"], result.tables["silver"]["version"]), work, cfg, paths["gold"], result
    )
    return result


def _build_gold(silver: DataFrame, work: Path, cfg: EtlConfig, gold_path: str, result: EtlResult) -> None:
    timings = result.timings_s
    tokenizer_dir = work / "tokenizer"
    with _stage("tokenizer", timings):
        shutil.rmtree(tokenizer_dir, ignore_errors=True)
        if cfg.tokenizer:
            result.tokenizer_fingerprint = copy_tokenizer(cfg.tokenizer, tokenizer_dir)
        else:
            tok = train_tokenizer(
                tokenizer_sample(silver, cfg.tokenizer_sample_docs), kind=cfg.tokenizer_kind, vocab_size=cfg.vocab_size
            )
            result.tokenizer_fingerprint = save_tokenizer(
                tok, tokenizer_dir, kind=cfg.tokenizer_kind, max_len=cfg.max_len
            )
        result.tokenizer_dir = str(tokenizer_dir)
        result.vocab_size = vocab_size(tokenizer_dir)
    docs = silver.select("id", "split", "text")
    if cfg.task == "classification":
        result.labels = label_names(silver)
        (tokenizer_dir / LABELS_FILE).write_text(json.dumps({n: i for i, n in enumerate(result.labels)}, indent=1))
        label_ids = F.create_map(*[F.lit(x) for i, n in enumerate(result.labels) for x in (n, i)])
        docs = silver.select("id", "split", label_ids[F.col("label")].alias("label"), "text")
    n_files = max(cfg.min_files, -(-result.rows["clean"] // cfg.target_file_rows))
    causal = cfg.task == "causal-lm"
    with _stage("tokenize", timings) as progress:
        tokens = tokenize_docs(
            docs, tokenizer_file=str(tokenizer_dir / TOKENIZER_FILE), max_len=None if causal else cfg.max_len
        )
        gold = (
            (pack_blocks(tokens, block_len=cfg.max_len) if causal else tokens)
            .repartition(n_files)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        progress["rows"] = gold_rows = gold.count()
    if causal:
        real = gold.agg(F.sum("n_tokens")).first()[0] or 0
        result.packing = {
            "blocks": gold_rows,
            "block_len": cfg.max_len,
            "real_token_fraction": real / max(gold_rows * cfg.max_len, 1),
        }
    try:
        _gate(
            gold,
            "gold",
            suite_params("gold", cfg, gold_rows, vocab_size=result.vocab_size, labels=result.labels),
            work,
            cfg,
            result,
        )
        result.gold_digest = table_digest(gold)
        with _stage("publish", timings) as progress:
            progress["rows"] = gold_rows
            version = write_table(
                gold,
                gold_path,
                metadata={
                    "validation": "passed",
                    "suite": "gold",
                    "tokenizer_fingerprint": result.tokenizer_fingerprint,
                    "vocab_size": result.vocab_size,
                    "max_len": cfg.max_len,
                    "labels": result.labels,
                    "task": cfg.task,
                    "split_fractions": list(cfg.split_fractions),
                    "rows": gold_rows,
                    "digest": result.gold_digest,
                },
            )
    finally:
        gold.unpersist()
    result.tables["gold"] = {"path": gold_path, "version": version, "digest": result.gold_digest}
