"""The ETL run: raw records -> bronze -> silver -> gold, plus quarantine, each table published
(one Delta commit) only after the version it would become passed its Great Expectations suite.

Each stage is a DataFrame transform from its own module; this module only chains them, gates and
writes the tables and counts rows, so that, on every run, read = clean + quarantined +
duplicates_exact + duplicates_near exactly (clean = rows silver already held + new rows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from etl.balance import balance_partitions, balance_report, file_count
from etl.clean import CLEAN_REASONS, clean_docs
from etl.config import EtlConfig
from etl.dedup import mark_exact_duplicates, with_content_hash
from etl.gold import APPEND, GoldCommit, gold_docs, install_tokenizer, plan_gold, tokenizer_source, write_labels
from etl.ingest import INGEST_REASONS, flag_changed_ids, flag_duplicate_ids, parse_records
from etl.lake import (
    TABLES,
    added_files,
    combine_digests,
    commit_metadata,
    latest_version,
    merge_new,
    read_table,
    table_digest,
    table_exists,
    write_table,
)
from etl.neardup import BAND_COLUMNS, drop_near_duplicates
from etl.pack import pack_blocks
from etl.pii import mask_pii, pii_counts
from etl.quality import QUALITY_REASONS, filter_quality
from etl.sources import read_sources, with_source_line
from etl.split import SPLITS, assign_split
from etl.storage import WorkDir
from etl.tokenize import TOKENIZER_FILE, tokenize_docs, vocab_size
from etl.validate import SuiteResult, ValidationFailed, build_data_docs, preload, split_bounds, validate_table

log = logging.getLogger("tokenlake.etl")
REJECT_REASONS = INGEST_REASONS + CLEAN_REASONS + QUALITY_REASONS
SILVER_COLUMNS = ("id", "text", "label", "meta", "split", "content_sha256", "source_file", "source_line")


MERGE_KEYS = {"bronze": "id", "silver": "content_sha256", "quarantine": "reject_id"}
"""The key each table is merged on: a row whose key the table holds is not added again."""


class StoredTableMismatch(ValueError):
    """A table in the work directory lacks what this version merges on."""


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
    partitions: dict = field(default_factory=dict)
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
        "source_line",
        F.substring(raw_col, 1, keep_chars).alias("raw"),
    )


def with_reject_id(df: DataFrame) -> DataFrame:
    """``reject_id``: a key for each quarantine row from its file, stage, reason and raw record
    (and its rank among identical ones), so that re-quarantining the same input adds nothing."""
    parts = ("source_file", "stage", "reject_reason", "raw")
    rank = F.row_number().over(Window.partitionBy(*parts).orderBy(F.col("id").asc_nulls_first()))
    key = F.concat_ws("\u0001", *[F.coalesce(F.col(c), F.lit("")) for c in parts], rank.cast("string"))
    return df.withColumn("reject_id", F.sha2(key, 256))


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


def suite_params(suite: str, cfg: EtlConfig, *, vocab_size: int = 0, labels: list | None = None) -> dict:
    """The run-time parameters of each table's suite."""
    if suite == "quarantine":
        return {"reject_reasons": list(REJECT_REASONS), "raw_keep_chars": cfg.raw_keep_chars}
    if suite == "gold":
        return {"max_len": cfg.max_len, "max_token_id": vocab_size - 1, "label_ids": list(range(len(labels or [])))}
    return {}


def row_params(suite: str, cfg: EtlConfig) -> Callable[[int], dict] | None:
    """The parameters of a suite that depend on its table's row count: the split shares' bounds."""
    return partial(split_bounds, cfg.split_fractions) if suite in ("silver", "gold") else None


def _gate(
    df: DataFrame,
    suite: str,
    params: dict,
    work: WorkDir,
    cfg: EtlConfig,
    result: EtlResult,
    gx: Future,
    stored: DataFrame | None = None,
) -> None:
    """Validate ``df`` before it is published (``stored``: ``df`` is what is appended to that
    published table); a failed suite raises ``ValidationFailed``. ``gx`` is the future GX context
    (``preload``)."""
    with _stage(f"validate_{suite}", result.timings_s):
        outcome = validate_table(
            df,
            suite,
            params=params,
            row_params=row_params(suite, cfg),
            task=cfg.task,
            results_dir=work.local / "validation",
            suite_dir=cfg.expectations_dir or None,
            docs=False,  # rendered once for all suites when the run ends, passed or not
            context=gx.result(),
            stored=stored,
        )
    result.validations.append(outcome)
    if not outcome.success:
        raise ValidationFailed(outcome, result)


def run_etl(spark: SparkSession, input_path: str, work: WorkDir | Path, cfg: EtlConfig) -> EtlResult:
    """Run every ETL stage, publishing each table only after the version it would become passed
    its suite; raise ``ValidationFailed`` at the first table that fails (nothing after it is
    written). Bronze, silver and quarantine only gain rows they do not hold (MERGE on a key), so
    the same input twice adds nothing; gold grows by silver's new rows, or is rebuilt from the
    whole silver table (``etl.gold``)."""
    work = WorkDir.of(work)
    paths = {t: work.path("lake", t) for t in TABLES}
    stored = {t: read_table(spark, paths[t]) if table_exists(spark, paths[t]) else None for t in TABLES}
    for table, key in MERGE_KEYS.items():
        if stored[table] is not None and key not in stored[table].columns:
            raise StoredTableMismatch(
                f"{paths[table]} was written by an older tokenlake (no {key} column to merge on): "
                f"use another --work directory or delete {work.path('lake')}"
            )
    result = EtlResult(rows={}, reject_reasons={}, tables={}, timings_s={})
    gx = preload(work.local / "validation")
    try:
        _stages(spark, input_path, work, cfg, paths, stored, result, gx)
    finally:
        if result.validations:  # the data docs show every suite that ran, passed or failed
            with _stage("validate_docs", result.timings_s):
                build_data_docs(work.local / "validation", gx.result())
    return result


def _stages(
    spark: SparkSession,
    input_path: str,
    work: WorkDir,
    cfg: EtlConfig,
    paths: dict,
    stored: dict,
    result: EtlResult,
    gx: Future,
) -> None:
    """The stages of ``run_etl``, filling ``result`` as they go (a failure's report keeps what ran);
    ``gx``: the GX context, opened in the background while the input is read."""
    bronze, ingest_rejects, read = _ingest(spark, input_path, cfg, stored["bronze"], result.timings_s)
    _publish(bronze, "bronze", paths, stored, work, cfg, result, gx)
    signed = spark.sparkContext.accumulator(0)
    counts, silver_new, quarantine = _clean(bronze, ingest_rejects, cfg, stored["silver"], result.timings_s, signed)
    bronze.unpersist()
    ingest_rejects.unpersist()
    _publish(quarantine, "quarantine", paths, stored, work, cfg, result, gx)
    result.reject_reasons = {r[0]: r[1] for r in quarantine.groupBy("reject_reason").count().collect()}
    quarantine.unpersist()
    result.pii = pii_counts(silver_new)
    result.rows = {  # before the silver gate, so that a failure's report has them too
        "read": read,
        "quarantined": sum(result.reject_reasons.values()),
        "clean": counts["stored"] + counts["unique_new"],
        "duplicates_exact": counts["duplicates_exact"],
        "duplicates_near": counts["duplicates_near"],
    }
    result.rows["new"] = _publish(silver_new, "silver", paths, stored, work, cfg, result, gx)
    result.tables["silver"]["rows_signed"] = signed.value
    silver_new.unpersist()
    silver = read_table(spark, paths["silver"], result.tables["silver"]["version"])
    split_counts = {r["split"]: r["count"] for r in silver.groupBy("split").count().collect()}
    result.rows.update({s: split_counts.get(s, 0) for s in SPLITS})
    log.info("rows: %s", result.rows)
    if result.rows["train"] == 0:
        raise ValueError(
            f"no usable training rows in {input_path}: rows {result.rows}, rejected {result.reject_reasons}"
        )
    _build_gold(silver, stored["gold"], work, cfg, paths, result, gx)


def _ingest(
    spark: SparkSession, input_path: str, cfg: EtlConfig, stored: DataFrame | None, timings: dict
) -> tuple[DataFrame, DataFrame, int]:
    """Parse every input record: the usable ones (bronze rows) and the rejects' quarantine rows,
    both persisted, and the number of records read."""
    with _stage("ingest", timings) as progress:
        parsed = parse_records(
            read_sources(spark, input_path, text_column=cfg.text_column),
            text_column=cfg.text_column,
            require_label=cfg.task == "classification",
        ).transform(flag_duplicate_ids)
        parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
        progress["rows"] = read = parsed.count()
        if stored is not None:  # ids bronze holds with another text, looked up for this input only
            flagged = parsed.transform(flag_changed_ids, stored=stored).persist(StorageLevel.MEMORY_AND_DISK)
            flagged.count()
            parsed.unpersist()
            parsed = flagged
        located = with_source_line(parsed)
        bronze = (
            located.where(F.col("reject_reason").isNull())
            .select("id", "text", "label", "meta", "source_file", "source_line")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        rejects = _quarantine_rows(located, "ingest", "raw", cfg.raw_keep_chars).persist(StorageLevel.MEMORY_AND_DISK)
        bronze.count(), rejects.count()
        parsed.unpersist()
    return bronze, rejects, read


def _clean(
    bronze: DataFrame, ingest_rejects: DataFrame, cfg: EtlConfig, stored: DataFrame | None, timings: dict, signed
) -> tuple[dict, DataFrame, DataFrame]:
    """Clean, filter, mask, de-duplicate and split this run's bronze rows, each step a stage timed
    under its own name. Return the counts (``stored``: rows silver already holds, ``unique_new``:
    rows it does not, ``duplicates_exact``, ``duplicates_near``), silver's new rows (with their
    MinHash bands, for later runs) and the run's quarantine rows (ingest and clean), both
    persisted. ``signed``: an accumulator of the documents given a MinHash signature."""
    with _stage("clean", timings) as progress:  # cleaning and the quality rules: one pass
        cleaned = (
            bronze.withColumn("raw", F.col("text"))
            .withColumn("reject_reason", F.lit(None).cast("string"))
            .transform(clean_docs, max_doc_chars=cfg.max_doc_chars, url_mode=cfg.url_mode)
            .transform(filter_quality, rules=cfg)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        progress["rows"] = cleaned.count()
        quarantine = ingest_rejects.unionByName(_quarantine_rows(cleaned, "clean", "raw", cfg.raw_keep_chars))
        quarantine = quarantine.transform(with_reject_id).persist(StorageLevel.MEMORY_AND_DISK)
        quarantine.count()
    with _stage("pii", timings) as progress:
        masked = (
            cleaned.where(F.col("reject_reason").isNull())
            .drop("raw", "reject_reason")
            .transform(mask_pii, pseudonymise=cfg.pseudonymise_pii)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        progress["rows"] = masked.count()
        cleaned.unpersist()
    with _stage("dedup_exact", timings) as progress:
        kept = (
            masked.transform(with_content_hash)
            .transform(mark_exact_duplicates, stored=stored)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        tally = kept.agg(
            F.count_if("is_stored").alias("stored"),
            F.count_if("is_duplicate").alias("duplicates_exact"),
            F.count_if(~F.col("is_stored") & ~F.col("is_duplicate")).alias("candidates"),
        ).first()
        counts = {"stored": tally["stored"], "duplicates_exact": tally["duplicates_exact"]}
        progress["rows"] = tally["candidates"]
        masked.unpersist()
    with _stage("dedup_near", timings) as progress:
        candidates = kept.where(~F.col("is_duplicate") & ~F.col("is_stored"))
        if cfg.near_dup_threshold > 0:
            candidates = drop_near_duplicates(
                candidates,
                stored,
                threshold=cfg.near_dup_threshold,
                num_perm=cfg.minhash_perm,
                bands=cfg.minhash_bands,
                shingle_words=cfg.shingle_words,
                counter=signed,
            )
        else:  # no bands: a later run with near-duplicates on signs these rows then
            candidates = candidates.withColumns(
                {"minhash_bands": F.lit(None).cast("array<bigint>"), "minhash_spec": F.lit(None).cast("bigint")}
            )
        progress["rows"] = tally["candidates"]
    with _stage("split", timings) as progress:
        silver_new = (
            candidates.transform(assign_split, fractions=cfg.split_fractions, salt=cfg.split_salt)
            .select(*SILVER_COLUMNS, *BAND_COLUMNS)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        progress["rows"] = counts["unique_new"] = silver_new.count()
        counts["duplicates_near"] = tally["candidates"] - counts["unique_new"]
        kept.unpersist()
        candidates.unpersist()
    return counts, silver_new, quarantine


def _publish(
    df: DataFrame, table: str, paths: dict, stored: dict, work: WorkDir, cfg: EtlConfig, result: EtlResult, gx: Future
) -> int:
    """Validate the version ``table`` would become with ``df``'s new rows (the new rows against the
    stored table, ``etl.validate``), then MERGE them in; return how many rows were new."""
    before, key = stored[table], MERGE_KEYS[table]
    new = df
    if before is not None:  # the rows to judge: computed once, read by every query of the suite
        new = df.join(before.select(key), key, "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        _gate(new, table, suite_params(table, cfg), work, cfg, result, gx, stored=before)
        with _stage(f"publish_{table}", result.timings_s):
            version, inserted = merge_new(new, paths[table], key=key, metadata={"validation": "passed", "suite": table})
    finally:
        if new is not df:
            new.unpersist()
    result.tables[table] = {"path": paths[table], "version": version, "rows_inserted": inserted}
    return inserted


def _build_gold(
    silver: DataFrame,
    stored: DataFrame | None,
    work: WorkDir,
    cfg: EtlConfig,
    paths: dict,
    result: EtlResult,
    gx: Future,
) -> None:
    """Append silver's new rows to gold, or rebuild gold from all of ``silver`` (``etl.gold``)."""
    spark, timings, gold_path = silver.sparkSession, result.timings_s, paths["gold"]
    tokenizer_dir = work.local / "tokenizer"
    # ``stored``: the gold table as the run found it (``run_etl`` read every table once)
    stored_meta = None if stored is None else commit_metadata(spark, gold_path, latest_version(spark, gold_path))
    labels = label_names(silver) if cfg.task == "classification" else []
    plan = plan_gold(stored_meta, cfg, tokenizer_dir, labels=labels)
    append = plan.mode == APPEND
    log.info("gold: %s (%s)", plan.mode, plan.reason)
    with _stage("tokenizer", timings):
        sample = partial(tokenizer_sample, silver, cfg.tokenizer_sample_docs)
        result.tokenizer_fingerprint = install_tokenizer(plan, cfg, tokenizer_dir, sample)
        result.tokenizer_dir = str(tokenizer_dir)
        result.vocab_size = vocab_size(tokenizer_dir)
    if cfg.task == "classification":
        result.labels = plan.stored.labels if append else labels
        write_labels(tokenizer_dir, result.labels)
    silver_version = result.tables["silver"]["version"]
    rows = silver
    if append:  # the rows silver gained since the version gold last took in
        taken = read_table(spark, paths["silver"], plan.stored.silver_version).select("id")
        rows = silver.join(taken, "id", "left_anti")
    causal = cfg.task == "causal-lm"
    tokenized = spark.sparkContext.accumulator(0)
    with _stage("tokenize", timings) as progress:
        tokens = tokenize_docs(
            gold_docs(rows, result.labels, cfg.task),
            tokenizer_file=str(tokenizer_dir / TOKENIZER_FILE),
            max_len=None if causal else cfg.max_len,
            counter=tokenized,
        )
        prefix = f"s{silver_version}-" if append else ""  # appended blocks' ids never clash with stored ones
        gold = pack_blocks(tokens, block_len=cfg.max_len, prefix=prefix) if causal else tokens
        gold = gold.persist(StorageLevel.MEMORY_AND_DISK)
        totals = gold.agg(F.count(F.lit(1)).alias("rows"), F.sum("n_tokens").alias("tokens")).first()
        progress["rows"] = gold_rows = totals["rows"]
    files = file_count(totals["tokens"] or 0, target_per_file=cfg.target_file_tokens, min_files=cfg.min_files)
    if causal:
        real = totals["tokens"] or 0
        result.packing = {
            "blocks": gold_rows,
            "block_len": cfg.max_len,
            "real_token_fraction": real / max(gold_rows * cfg.max_len, 1),
        }
    try:
        params = suite_params("gold", cfg, vocab_size=result.vocab_size, labels=result.labels)
        _gate(gold, "gold", params, work, cfg, result, gx, stored=stored if append else None)
        digest = table_digest(gold)
        commit = GoldCommit(
            tokenizer_fingerprint=result.tokenizer_fingerprint,
            tokenizer_source=tokenizer_source(cfg),
            vocab_size=result.vocab_size,
            max_len=cfg.max_len,
            task=cfg.task,
            labels=result.labels,
            split_fractions=list(cfg.split_fractions),
            silver_version=silver_version,
            rows=plan.stored.rows + gold_rows if append else gold_rows,
            digest=combine_digests(plan.stored.digest, digest) if append else digest,
            mode=plan.mode,
        )
        result.gold_digest = commit.digest
        with _stage("publish_gold", timings) as progress:
            progress["rows"] = gold_rows
            if append and gold_rows == 0:  # nothing new: gold stays at its version
                version = latest_version(spark, gold_path)
            else:
                version = write_table(
                    balance_partitions(gold, weight=F.col("n_tokens"), files=files),
                    gold_path,
                    mode="append" if append else "overwrite",
                    metadata=commit.metadata(),
                )
        written = read_table(spark, gold_path, version)
        file_name = F.element_at(F.split(F.col("_metadata.file_path"), "/"), -1)
        written = written.where(file_name.isin(added_files(spark, gold_path, version)) if gold_rows else F.lit(False))
        result.partitions = balance_report(gold, written, weight=F.col("n_tokens"), files=files)
    finally:
        gold.unpersist()
    result.tables["gold"] = {
        "path": gold_path,
        "version": version,
        "digest": result.gold_digest,
        "mode": plan.mode,
        "mode_reason": plan.reason,
        "rows_tokenized": tokenized.value,
    }
