"""Ingest: raw records into typed document rows, each bad record marked with a reason.

``etl.sources.read_sources`` turns every input file (JSON Lines, CSV, Parquet, text) into JSON
records with their file; ``parse_records`` turns each into ``id, text, label, meta`` or a
``reject_reason``. Nothing is dropped here: rows with a reason go to the quarantine table, the rest
to bronze. Parsing uses Spark's VARIANT type, so the JSON type of each field (string, number,
list, ...) is checked by built-in functions, with no Python UDF.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from tokenlake.etl.reasons import reason
from tokenlake.etl.sources import INVALID_UTF8

MALFORMED_JSON = reason("malformed_json")
NOT_AN_OBJECT = reason("not_an_object")
BLANK_LINE = reason("blank_line")
MISSING_TEXT = reason("missing_text")
TEXT_NOT_STRING = reason("text_not_string")
BAD_ID = reason("bad_id")
MISSING_LABEL = reason("missing_label")
BAD_LABEL_TYPE = reason("bad_label_type")
DUPLICATE_ID = reason("duplicate_id")

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")


def read_jsonl(spark: SparkSession, path: str) -> DataFrame:
    """Every line of the JSON Lines file(s) at ``path`` as ``raw`` with its ``source_file``."""
    return spark.read.text(path).select(F.col("value").alias("raw"), F.col("_metadata.file_path").alias("source_file"))


def meta_of(raw: Column, *, exclude: tuple[str, ...]) -> Column:
    """The record's other top-level fields as ``map<string,string>`` (nested values as JSON)."""
    fields = F.from_json(raw, "map<string,string>")
    return F.map_filter(fields, lambda k, v: ~k.isin(*exclude) & v.isNotNull())


def _json_type(variant: Column, path: str) -> Column:
    """The JSON type of a field (``STRING``, ``BIGINT``, ``ARRAY<...>``, ``VOID`` for null), null if absent."""
    return F.schema_of_variant(F.variant_get(variant, path, "variant"))


def _field(variant: Column, path: str) -> Column:
    return F.variant_get(variant, path, "string")


def field_path(name: str) -> str:
    """The variant path of a top-level field, whatever characters its name holds (``$['my col']``)."""
    if "'" not in name:
        return f"$['{name}']"
    if '"' not in name:
        return f'$["{name}"]'
    raise ValueError(f"an input column name cannot hold both kinds of quote: {name!r}")


def parse_records(
    df: DataFrame,
    *,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str = "id",
    require_label: bool = True,
) -> DataFrame:
    """``raw, source_file[, pre_reason]`` -> ``id, text, label, meta, source_file, raw, reject_reason``.

    The input's fields ``text_column``, ``label_column`` and ``id_column`` become ``text``,
    ``label`` and ``id``; the others are kept in ``meta``.

    ``reject_reason`` is null for a usable row; a ``pre_reason`` from the reader comes first.
    A row without an id gets the SHA-256 of its text,
    so re-ingesting the same document yields the same id. Labels may be JSON strings or integers
    and are kept as strings.
    """
    v = F.try_parse_json("raw")
    text_path, label_path, id_path = (field_path(c) for c in (text_column, label_column, id_column))
    text_type, label_type, id_type = (_json_type(v, p) for p in (text_path, label_path, id_path))
    pre = F.col("pre_reason") if "pre_reason" in df.columns else F.lit(None).cast("string")
    reason = (
        F.when(pre.isNotNull(), pre)
        .when(F.col("raw").rlike(r"^\s*$"), F.lit(BLANK_LINE))  # trim() keeps tabs: a tab-only line is blank too
        .when(~F.is_valid_utf8("raw"), F.lit(INVALID_UTF8))
        .when(v.isNull(), F.lit(MALFORMED_JSON))
        .when(~F.schema_of_variant(v).startswith("OBJECT"), F.lit(NOT_AN_OBJECT))
        .when(text_type.isNull() | (text_type == "VOID"), F.lit(MISSING_TEXT))
        .when(text_type != "STRING", F.lit(TEXT_NOT_STRING))
        .when(
            id_type.isNotNull() & (id_type != "VOID") & (id_type != "STRING") & ~id_type.isin(*_INTEGER_TYPES),
            F.lit(BAD_ID),
        )
    )
    if require_label:
        reason = reason.when(label_type.isNull() | (label_type == "VOID"), F.lit(MISSING_LABEL))
    reason = reason.when(
        label_type.isNotNull() & (label_type != "VOID") & (label_type != "STRING") & ~label_type.isin(*_INTEGER_TYPES),
        F.lit(BAD_LABEL_TYPE),
    )
    text = _field(v, text_path)
    return df.select(
        F.coalesce(_field(v, id_path), F.sha2(text, 256)).alias("id"),
        text.alias("text"),
        _field(v, label_path).alias("label"),
        meta_of(F.col("raw"), exclude=(id_column, text_column, label_column)).alias("meta"),
        "source_file",
        "raw",
        reason.alias("reject_reason"),
        *[c for c in ("_block", "_record") if c in df.columns],  # for etl.sources.with_source_line
        *[c for c in ("_decoded",) if c in df.columns],  # for etl.formats.decode_text
    )


def flag_duplicate_ids(df: DataFrame) -> DataFrame:
    """Mark every usable row after the first of each id as ``duplicate_id``.

    Which row is kept does not depend on partitioning: the smallest (text, source_file) wins.
    """
    usable = F.col("reject_reason").isNull()
    rank = F.row_number().over(Window.partitionBy(usable, "id").orderBy("text", "source_file"))
    return df.withColumn(
        "reject_reason", F.when(usable & (rank > 1), F.lit(DUPLICATE_ID)).otherwise(F.col("reject_reason"))
    )


def flag_changed_ids(df: DataFrame, *, stored: DataFrame) -> DataFrame:
    """Mark usable rows whose id ``stored`` (bronze) already holds with another text as
    ``duplicate_id``: the stored document stays, the changed one is quarantined, not merged.

    Where no usable id of ``df`` is stored (a day's new documents), ``df`` itself comes back: that
    is told from bronze's ``id`` column alone, and its texts are read only where an id is stored.
    The clashing ids come from an inner join, so that a small input (``df``: persist it, it is read
    up to three times) is sent to every task and the stored table is only scanned, never shuffled."""
    usable = df.where(F.col("reject_reason").isNull()).select("id", "text")
    if usable.join(stored.select("id"), "id", "left_semi").isEmpty():
        return df
    known = stored.select("id", F.col("text").alias("_stored_text"))
    clashes = usable.join(known, "id").where(F.col("_stored_text") != F.col("text")).select("id").distinct()
    joined = df.join(clashes.withColumn("_clash", F.lit(True)), "id", "left")
    clash = F.col("reject_reason").isNull() & F.coalesce(F.col("_clash"), F.lit(False))
    return joined.withColumn(
        "reject_reason", F.when(clash, F.lit(DUPLICATE_ID)).otherwise(F.col("reject_reason"))
    ).drop("_clash")
