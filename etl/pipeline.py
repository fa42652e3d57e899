"""The ETL run: raw records -> bronze -> silver -> gold, plus quarantine, each table published
(one Delta commit) only after the version it would become passed its Great Expectations suite.

The run is a list of stages (``SILVER_STAGES``; ``etl.context`` says what a stage is), each a
function from the previous stage's kept rows to its own kept rows, quarantine rows and counts,
timed in the report under its own name. The transforms themselves live in their modules; this one
chains them, publishes the tables and adds up the counts, so that on every run read = clean +
quarantined + duplicates_exact + duplicates_near exactly (clean = rows silver already held + new
rows), every stage having shown rows in = kept + removed.
"""

from __future__ import annotations

from collections import Counter
from functools import reduce
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from tokenlake.etl.clean import clean_docs
from tokenlake.etl.config import SPLITS, EtlConfig, Task
from tokenlake.etl.context import MERGE_KEYS, EtlResult, EtlRun, StageOut, log
from tokenlake.etl.dedup import mark_exact_duplicates, with_content_hash
from tokenlake.etl.formats import decode_text, unknown_format
from tokenlake.etl.gold import build_gold
from tokenlake.etl.ingest import flag_changed_ids, flag_duplicate_ids, parse_records
from tokenlake.etl.lake import TABLES, read_pinned, read_table
from tokenlake.etl.language import language_reason, with_language
from tokenlake.etl.neardup import BAND_COLUMNS, drop_near_duplicates
from tokenlake.etl.pii import mask_pii, pii_counts
from tokenlake.etl.quality import filter_quality
from tokenlake.etl.sources import read_sources, with_source_line
from tokenlake.etl.split import assign_split
from tokenlake.etl.storage import WorkDir
from tokenlake.etl.validate import build_data_docs, preload

SILVER_COLUMNS = (
    "id",
    "text",
    "label",
    "meta",
    "lang",
    "lang_confidence",
    "split",
    "content_sha256",
    "source_file",
    "source_line",
)
_PERSIST = StorageLevel.MEMORY_AND_DISK


class StoredTableMismatch(ValueError):
    """A table in the work directory lacks what this version merges on."""


class NoTrainingRows(ValueError):
    """The input left no row in silver's train split: nothing to tokenize for training."""


def _quarantine_rows(df: DataFrame, stage: str, keep_chars: int) -> DataFrame:
    """The rejected rows of ``df`` (a ``reject_reason``, the record as read in ``raw``) as
    quarantine rows of ``stage``, with the language identified where there is one."""
    return df.where(F.col("reject_reason").isNotNull()).select(
        "id",
        "reject_reason",
        F.lit(stage).alias("stage"),
        "source_file",
        "source_line",
        F.substring("raw", 1, keep_chars).alias("raw"),
        (F.col("lang") if "lang" in df.columns else F.lit(None).cast("string")).alias("lang"),
    )


def _reasons(rejects: DataFrame) -> dict[str, int]:
    """Quarantine rows per reason (one aggregation; it also computes ``rejects``' cache)."""
    return {r["reject_reason"]: r["count"] for r in rejects.groupBy("reject_reason").count().collect()}


def with_reject_id(df: DataFrame) -> DataFrame:
    """``reject_id``: a key for each quarantine row from its file, stage, reason and raw record
    (and its rank among identical ones), so that re-quarantining the same input adds nothing."""
    parts = ("source_file", "stage", "reject_reason", "raw")
    rank = F.row_number().over(Window.partitionBy(*parts).orderBy(F.col("id").asc_nulls_first()))
    key = F.concat_ws("\u0001", *[F.coalesce(F.col(c), F.lit("")) for c in parts], rank.cast("string"))
    return df.withColumn("reject_id", F.sha2(key, 256))


# ---------------------------------------------------------------- stages


def ingest(run: EtlRun, input_path: str) -> tuple[StageOut, int]:
    """Parse every input record: the usable ones (bronze rows) and the rejects, and the number of
    records read. Ids bronze already holds with another text are rejected (``duplicate_id``)."""
    cfg = run.cfg
    parsed = (
        parse_records(
            read_sources(
                run.spark,
                input_path,
                text_column=cfg.text_column,
                id_column=cfg.id_column,
                unknown=unknown_format(cfg.text_format),
            ),
            text_column=cfg.text_column,
            label_column=cfg.label_column,
            id_column=cfg.id_column,
            require_label=cfg.task == Task.CLASSIFICATION,
        )
        .transform(decode_text, text_format=cfg.text_format, where=~F.col("_decoded"))
        .transform(flag_duplicate_ids)
    )
    parsed = parsed.persist(_PERSIST)
    read = parsed.count()
    if run.stored["bronze"] is not None:  # looked up for this input's ids only
        flagged = parsed.transform(flag_changed_ids, stored=run.stored["bronze"])
        if flagged is not parsed:  # some input id is stored: the flags computed once
            flagged.persist(_PERSIST).count()
            parsed.unpersist()
            parsed = flagged
    located = with_source_line(parsed)
    bronze = (
        located.where(F.col("reject_reason").isNull())
        .select("id", "text", "label", "meta", "source_file", "source_line")
        .persist(_PERSIST)
    )
    rejects = _quarantine_rows(located, "ingest", cfg.raw_keep_chars).persist(_PERSIST)
    out = StageOut(bronze, bronze.count(), rejected=_reasons(rejects), rejects=rejects)
    parsed.unpersist()
    return out, read


def clean_pii(run: EtlRun, bronze: DataFrame, rows: int) -> StageOut:
    """One pass over each document: cleaning (``etl.clean``), its language (``etl.language``), the
    quality rules (``etl.quality``), the language gate and, on the rows all keep, PII masking
    (``etl.pii``)."""
    cfg = run.cfg
    kept = F.col("reject_reason").isNull()
    gate = language_reason(cfg.languages, cfg.min_lang_confidence)
    cleaned = (
        bronze.withColumn("raw", F.col("text"))
        .withColumn("reject_reason", F.lit(None).cast("string"))
        .transform(clean_docs, max_doc_chars=cfg.max_doc_chars, url_mode=cfg.url_mode)
        .transform(with_language, where=kept)
        .transform(filter_quality, rules=cfg)
        .withColumn("reject_reason", F.coalesce(F.col("reject_reason"), gate))
        .transform(mask_pii, pseudonymise=cfg.pseudonymise_pii, where=kept)
        .persist(_PERSIST)
    )
    by_reason = _reasons(cleaned)
    rejects = _quarantine_rows(cleaned, "clean", cfg.raw_keep_chars).persist(_PERSIST)
    rejects.count()
    return StageOut(
        cleaned.where(kept).drop("raw", "reject_reason"),
        by_reason.pop(None, 0),
        rejected=by_reason,
        rejects=rejects,
        cached=cleaned,
    )


def dedup_exact(run: EtlRun, df: DataFrame, rows: int) -> StageOut:
    """SHA-256 of each cleaned text, one row per content kept (``etl.dedup``); rows silver already
    holds are counted as ``stored`` and not carried on."""
    marked = df.transform(with_content_hash).transform(mark_exact_duplicates, stored=run.stored["silver"])
    marked = marked.persist(_PERSIST)
    tally = marked.agg(
        F.count_if("is_stored").alias("stored"),
        F.count_if("is_duplicate").alias("duplicates_exact"),
        F.count_if(~F.col("is_stored") & ~F.col("is_duplicate")).alias("kept"),
    ).first()
    return StageOut(
        marked.where(~F.col("is_duplicate") & ~F.col("is_stored")).drop("is_duplicate", "is_stored"),
        tally["kept"],
        removed={"stored": tally["stored"], "duplicates_exact": tally["duplicates_exact"]},
        cached=marked,
    )


def dedup_near(run: EtlRun, df: DataFrame, rows: int) -> StageOut:
    """MinHash signatures of the new rows, band buckets joined with silver's stored bands,
    candidate pairs verified by exact Jaccard, clusters (``etl.neardup``): stored rows win."""
    cfg = run.cfg
    if cfg.near_dup_threshold <= 0:  # no bands: a later run with near-duplicates on signs these rows then
        bands = {"minhash_bands": F.lit(None).cast("array<bigint>"), "minhash_spec": F.lit(None).cast("bigint")}
        kept = df.withColumns(bands).persist(_PERSIST)
        return StageOut(kept, kept.count())
    kept, kept_rows = drop_near_duplicates(
        df,
        run.stored["silver"],
        threshold=cfg.near_dup_threshold,
        num_perm=cfg.minhash_perm,
        bands=cfg.minhash_bands,
        shingle_words=cfg.shingle_words,
        counter=run.signed,
    )
    return StageOut(kept, kept_rows, removed={"duplicates_near": rows - kept_rows})


def split(run: EtlRun, df: DataFrame, rows: int) -> StageOut:
    """Each row's split from a salted hash of its id (``etl.split``), in silver's columns."""
    cfg = run.cfg
    silver = (
        df.transform(assign_split, fractions=cfg.split_fractions, salt=cfg.split_salt)
        .select(*SILVER_COLUMNS, *BAND_COLUMNS)
        .persist(_PERSIST)
    )
    return StageOut(silver, silver.count())


SILVER_STAGES = (clean_pii, dedup_exact, dedup_near, split)
"""From bronze's new rows to silver's: each stage timed under its name (``ingest`` comes first)."""


# ---------------------------------------------------------------- the run


def run_etl(spark: SparkSession, input_path: str, work: WorkDir | Path, cfg: EtlConfig) -> EtlResult:
    """Run every ETL stage, publishing each table only after the version it would become passed
    its suite; raise ``ValidationFailed`` at the first table that fails (nothing after it is
    written). Bronze, silver and quarantine only gain rows they do not hold (MERGE on a key), so
    the same input twice adds nothing; gold grows by silver's new rows, or is rebuilt from the
    whole silver table (``etl.gold``)."""
    work = WorkDir.of(work)
    paths = {t: work.path("lake", t) for t in TABLES}
    pinned = {t: read_pinned(spark, paths[t]) for t in TABLES}
    stored = {t: p and p[0] for t, p in pinned.items()}
    for table, key in MERGE_KEYS.items():
        if stored[table] is not None and key not in stored[table].columns:
            raise StoredTableMismatch(
                f"{paths[table]} was written by an older tokenlake (no {key} column to merge on): "
                f"use another --work directory or delete {work.path('lake')}"
            )
    result = EtlResult(rows={}, reject_reasons={}, tables={}, timings_s={})
    gx, signed = preload(work.local / "validation"), spark.sparkContext.accumulator(0)
    run = EtlRun(spark, work, cfg, stored, {t: p and p[1] for t, p in pinned.items()}, result, gx, signed)
    try:
        _run(run, input_path)
    finally:
        if result.validations:  # the data docs show every suite that ran, passed or failed
            with run.stage("validate_docs"):
                build_data_docs(work.local / "validation", run.gx.result())
    return result


def _run(run: EtlRun, input_path: str) -> None:
    """The stages of ``run_etl``, filling ``run.result`` as they go (a failure's report keeps what ran)."""
    result = run.result
    with run.stage("ingest") as progress:
        bronze, read = ingest(run, input_path)
        progress["rows"] = read
    outs = [bronze.check("ingest", read)]
    run.publish(bronze.kept, "bronze")
    for stage in SILVER_STAGES:
        with run.stage(stage.__name__) as progress:
            progress["rows"] = rows = outs[-1].kept_rows
            outs.append(stage(run, outs[-1].kept, rows).check(stage.__name__, rows))
        outs[-2].release()
    silver_new = outs[-1]
    rejects = [out.rejects for out in outs if out.rejects is not None]
    quarantine = reduce(DataFrame.unionByName, rejects).transform(with_reject_id).persist(_PERSIST)
    run.publish(quarantine, "quarantine")
    for frame in (quarantine, *rejects):
        frame.unpersist()
    rejected = sum((Counter(out.rejected) for out in outs), Counter())
    removed = sum((Counter(out.removed) for out in outs), Counter())
    result.reject_reasons = dict(rejected)
    result.pii = pii_counts(silver_new.kept)
    result.rows = {  # before the silver gate, so that a failure's report has them too
        "read": read,
        "quarantined": sum(rejected.values()),
        "clean": removed["stored"] + silver_new.kept_rows,
        "duplicates_exact": removed["duplicates_exact"],
        "duplicates_near": removed["duplicates_near"],
    }
    result.rows["new"], added = run.publish(silver_new.kept, "silver")
    result.tables["silver"]["rows_signed"] = run.signed.value
    silver_new.release()
    silver = read_table(run.spark, run.path("silver"), result.tables["silver"]["version"])
    split_counts, result.languages = Counter(), Counter()
    for r in silver.groupBy("split", F.coalesce("lang", F.lit("unidentified")).alias("lang")).count().collect():
        split_counts[r["split"]] += r["count"]
        result.languages[r["lang"]] += r["count"]
    result.languages = dict(result.languages.most_common())
    result.rows.update({s: split_counts.get(s, 0) for s in SPLITS})
    log.info("rows: %s", result.rows)
    if result.rows["train"] == 0:
        raise NoTrainingRows(
            f"no usable training rows in {input_path}: rows {result.rows}, rejected {result.reject_reasons}"
        )
    build_gold(run, silver, added)
