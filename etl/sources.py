"""Sources: input files of any supported format as one frame of JSON records.

Every record becomes ``raw`` (a JSON object as text, or the bad line itself), ``source_file`` and
``pre_reason`` (a reject reason known at read time), so that ``etl.ingest.parse_records`` checks
all formats with the same rules. The format comes from the file name (``.gz``/``.bz2`` are
decompressed by Spark): JSON Lines (``.jsonl``, ``.json``, ``.ndjson``; also any unknown
extension), CSV/TSV (header line; quoted fields may hold newlines), Parquet, plain text
(``.txt``, ``.md``: one document per file), and the formats ``etl.archives`` reads: web archives
(``.warc``), HTML pages (``.html``, ``.htm``) and e-mail (``.eml``, ``.mbox``). ``path`` is a
file, a directory (read recursively), a glob, or several of them separated by commas.

CSV and Parquet files are grouped by their header or schema, so a file with another layout is
read with its own columns instead of failing the job. A file whose content cannot be read (a
Parquet file that is not one, a CSV header that does not parse) becomes one ``unreadable_file``
row carrying the error. Any other failure to read a file (a permission, the storage, a lost
executor) is not bad data: it raises ``SourceReadFailed`` and the run fails, quarantining nothing.
"""

from __future__ import annotations

from collections import defaultdict
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tokenlake.etl.archives import read_documents
from tokenlake.etl.lake import error_cause, is_bad_file_error
from tokenlake.etl.reasons import reason

MALFORMED_CSV = reason("malformed_csv")
UNREADABLE_FILE = reason("unreadable_file")
INVALID_UTF8 = reason("invalid_utf8")
FORMATS = {
    "jsonl": "json",
    "json": "json",
    "ndjson": "json",
    "csv": "csv",
    "tsv": "tsv",
    "parquet": "parquet",
    "txt": "text",
    "text": "text",
    "md": "text",
    "warc": "warc",
    "html": "html",
    "htm": "html",
    "eml": "eml",
    "mbox": "mbox",
}
_COMPRESSED = ("gz", "bz2")
_CORRUPT = "_corrupt_record"
_ERROR_CHARS = 500
_BAD_CSV_SIGNS = ("TextParsingException", "MALFORMED_CSV_RECORD")


class SourceReadFailed(OSError):
    """An input file could not be read for a reason other than its content."""


def _reject_or_raise(path: str, exc: Exception, bad_content: bool, unreadable: list) -> None:
    """A file whose content is bad becomes an ``unreadable_file`` row; any other error fails the run."""
    if not bad_content:
        raise SourceReadFailed(
            f"could not read {path} ({type(exc).__name__}: {error_cause(exc)}); this is not bad data, "
            "so nothing was quarantined: fix the storage or cluster and run again"
        ) from exc
    unreadable.append((path, exc))


_SCHEMA = "raw string, source_file string, pre_reason string, _block long, _decoded boolean"


def file_format(path: str, unknown: str = "json") -> str:
    """``json``, ``csv``, ``tsv``, ``parquet``, ``text`` or one of ``etl.archives.KINDS`` from the
    file name; ``unknown`` for a name without a known extension."""
    parts = path.rsplit("/", 1)[-1].lower().split(".")
    if len(parts) > 2 and parts[-1] in _COMPRESSED:
        parts = parts[:-1]
    return FORMATS.get(parts[-1], unknown) if len(parts) > 1 else unknown


def data_files(paths, where: str) -> list[str]:
    """``paths`` without hidden files (``.x``, ``_x``: Spark's and Delta's own), sorted;
    ``FileNotFoundError`` naming ``where`` if none is left."""
    files = sorted(f for f in paths if not f.rsplit("/", 1)[-1].startswith((".", "_")))
    if not files:
        raise FileNotFoundError(f"no input files at {where}")
    return files


def list_files(spark: SparkSession, path: str) -> list[str]:
    """Every data file under ``path`` (comma-separated files, directories or globs), through
    Hadoop's file system so that cloud paths work; hidden files (``.x``, ``_x``) are skipped."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    found: set[str] = set()
    for pattern in (p.strip() for p in path.split(",") if p.strip()):
        hpath = jvm.org.apache.hadoop.fs.Path(pattern)
        fs = hpath.getFileSystem(conf)
        for status in fs.globStatus(hpath) or []:
            if not status.isDirectory():
                found.add(status.getPath().toString())
                continue
            files = fs.listFiles(status.getPath(), True)
            while files.hasNext():
                found.add(files.next().getPath().toString())
    return data_files(found, path)


def read_sources(
    spark: SparkSession, path: str, *, text_column: str = "text", id_column: str = "id", unknown: str = "json"
) -> DataFrame:
    """All records under ``path`` as ``raw, source_file, pre_reason``, ``_decoded`` (the reader
    decoded the text already: ``etl.archives``'s formats) and ``_block``, ``_record`` for
    ``with_source_line``. A file without a known extension is read as ``unknown`` (``eml``: a
    directory of messages such as a maildir)."""
    by_format: dict[str, list[str]] = defaultdict(list)
    for f in list_files(spark, path):
        by_format[file_format(f, unknown)].append(f)
    readers = {"json": _read_json, "text": _read_text, "csv": _read_csv, "tsv": _read_csv, "parquet": _read_parquet}
    frames = [
        readers[fmt](spark, files, text_column=text_column, fmt=fmt)
        if fmt in readers
        else read_documents(spark, files, kind=fmt, text_column=text_column, id_column=id_column)
        for fmt, files in sorted(by_format.items())
    ]
    return reduce(DataFrame.unionByName, frames).withColumn("_record", F.monotonically_increasing_id())


def _as_records(df: DataFrame, raw: Column, pre_reason: Column | None = None) -> DataFrame:
    reason = pre_reason if pre_reason is not None else F.lit(None).cast("string")
    return df.select(
        raw.alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        reason.alias("pre_reason"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.lit(False).alias("_decoded"),
    )


def _read_json(spark: SparkSession, files: list[str], **_) -> DataFrame:
    return _as_records(spark.read.text(files), F.col("value"))


def _read_text(spark: SparkSession, files: list[str], *, text_column: str, **_) -> DataFrame:
    df = spark.read.text(files, wholetext=True)
    valid = F.is_valid_utf8("value")
    raw = F.when(valid, F.to_json(F.struct(F.col("value").alias(text_column)))).otherwise(F.col("value"))
    return _as_records(df, raw, F.when(~valid, F.lit(INVALID_UTF8)))


def _read_csv(spark: SparkSession, files: list[str], *, fmt: str, **_) -> DataFrame:
    """CSV with a header; every column is read as a string, a row Spark cannot parse (an
    unbalanced quote runs to the end of the file) is one ``malformed_csv`` record."""
    options = {"header": "true", "multiLine": "true", "escape": '"', "sep": "\t" if fmt == "tsv" else ","}
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    unreadable = []
    for f in files:
        try:
            groups[tuple(spark.read.options(**options).csv(f).columns)].append(f)
        except Exception as e:
            _reject_or_raise(f, e, any(sign in str(e) for sign in _BAD_CSV_SIGNS), unreadable)
    frames = [_unreadable(spark, unreadable)] if unreadable else []
    for columns, group in sorted(groups.items()):
        if not columns:  # an empty file: no header, no records
            continue
        schema = ", ".join(f"`{c}` string" for c in columns) + f", `{_CORRUPT}` string"
        df = spark.read.options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=_CORRUPT).csv(
            group, schema=schema
        )
        corrupt = F.col(_CORRUPT).isNotNull()
        raw = F.when(corrupt, F.col(_CORRUPT)).otherwise(F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])))
        reason = F.when(corrupt, F.lit(MALFORMED_CSV)).when(raw.contains("\ufffd"), F.lit(INVALID_UTF8))
        frames.append(_as_records(df, raw, reason))
    return _union(spark, frames)


def _read_parquet(spark: SparkSession, files: list[str], **_) -> DataFrame:
    groups: dict[str, list[str]] = defaultdict(list)
    unreadable = []
    for f in files:
        try:
            groups[spark.read.parquet(f).schema.json()].append(f)
        except Exception as e:  # not Parquet, or a broken footer: the file is a reject
            _reject_or_raise(f, e, is_bad_file_error(e), unreadable)
    frames = [_unreadable(spark, unreadable)] if unreadable else []
    for _, group in sorted(groups.items()):
        df = spark.read.parquet(*group)
        frames.append(_as_records(df, F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))))
    return _union(spark, frames)


def _unreadable(spark: SparkSession, failures: list[tuple[str, Exception]]) -> DataFrame:
    rows = [(f"{type(e).__name__}: {error_cause(e, _ERROR_CHARS)}", f, UNREADABLE_FILE, 0, False) for f, e in failures]
    return spark.createDataFrame(rows, _SCHEMA)


def _union(spark: SparkSession, frames: list[DataFrame]) -> DataFrame:
    if not frames:
        return spark.createDataFrame([], _SCHEMA)
    return reduce(DataFrame.unionByName, frames)


def with_source_line(df: DataFrame) -> DataFrame:
    """Add ``source_line``: the record's 0-based position in its file (its line for JSON Lines,
    its row for CSV and Parquet) from the ``_block`` and ``_record`` columns of ``read_sources``.

    The records of one file split are consecutive in one partition, so a record's position is the
    number of records in its file's earlier splits plus its distance from its split's first
    record: one small aggregate per split reaches the driver, never rows. ``df`` must be
    persisted (``_record`` is a position in the partitions as they were read)."""
    splits = df.groupBy("source_file", "_block").agg(F.min("_record").alias("first"), F.count(F.lit(1)).alias("n"))
    offsets, running, previous = [], 0, None
    for row in sorted(splits.collect(), key=lambda r: (r["source_file"], r["_block"])):
        running = 0 if row["source_file"] != previous else running
        offsets.append((row["source_file"], row["_block"], row["first"], running))
        running, previous = running + row["n"], row["source_file"]
    schema = "source_file string, _block long, _first long, _offset long"
    # Broadcast by hint: Spark cannot size a frame made from a Python list, so it would plan a
    # shuffle of every row on (file, split), a key with a few values: all rows in one or two
    # partitions, and every later stage on one core (the 200 MB bench corpus: clean took 121 s in
    # one task of eight).
    starts = F.broadcast(df.sparkSession.createDataFrame(offsets, schema))
    joined = df.join(starts, ["source_file", "_block"], "left")
    line = F.col("_offset") + F.col("_record") - F.col("_first")
    return joined.withColumn("source_line", line).drop("_block", "_record", "_first", "_offset")
