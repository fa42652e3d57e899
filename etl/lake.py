"""Delta Lake I/O: every write returns the table version it created, every read can pin one."""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the Spark-free training path imports error_cause
    from pyspark.sql import DataFrame, SparkSession

TABLES = ("bronze", "silver", "gold", "quarantine")


ROW_GROUP_CONF = "parquet.block.size"


@contextlib.contextmanager
def session_setting(spark: SparkSession, key: str, value: str | None):
    """``key`` set to ``value`` in the session while the block runs (for settings a write reads
    from the session, not from its options), then put back as it was; None leaves it alone."""
    if value is None:
        yield
        return
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def read_pinned(spark: SparkSession, path: str) -> tuple[DataFrame, int] | None:
    """The table at its latest version, pinned to it, and that version (None where there is no
    table yet). Later commits to the table do not change what the frame reads: frames cached on
    it stay valid when the run MERGEs into the table (an unpinned read is re-planned against the
    new version after a MERGE, and what was cached on it is recomputed)."""
    if not table_exists(spark, path):
        return None
    version = latest_version(spark, path)
    return read_table(spark, path, version), version


def write_table(
    df: DataFrame,
    path: str,
    *,
    mode: str = "overwrite",
    metadata: dict | None = None,
    row_group_bytes: int | None = None,
) -> int:
    """Write ``df`` as one Delta commit (``metadata`` goes into the commit's userMetadata);
    return the new version. ``row_group_bytes``: Parquet's row group size for this write (Delta
    does not pass writer options to Parquet; the session's settings reach its Hadoop conf)."""
    writer = df.write.format("delta").mode(mode)
    if mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    if metadata:
        writer = writer.option("userMetadata", json.dumps(metadata, sort_keys=True))
    with session_setting(df.sparkSession, ROW_GROUP_CONF, str(row_group_bytes) if row_group_bytes else None):
        writer.save(path)
    return latest_version(df.sparkSession, path)


COMMIT_FILE = re.compile(r"[0-9]+\.json")
"""The name of a JSON commit in ``_delta_log`` (``commit_file`` writes it for a version)."""


def commit_file(version: int) -> str:
    """The name of ``version``'s JSON commit in ``_delta_log``."""
    return f"{int(version):020d}.json"


def _log(spark: SparkSession, path: str):
    """The Hadoop path of ``path``'s Delta log."""
    return spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path.rstrip("/") + "/_delta_log")


def _hadoop_conf(spark: SparkSession):
    """The Hadoop configuration Delta itself uses: the context's with the session's settings."""
    return spark._jsparkSession.sessionState().newHadoopConf()


def _commit_versions(spark: SparkSession, path: str) -> list[int]:
    """The versions of the JSON commits in ``path``'s Delta log, listed through the session's
    Hadoop file system (any URI Spark reads: local, ``s3a://``, ``hdfs://``); none where there is
    no log. Delta keeps the latest commit's file whatever it cleans up, so the highest is the
    table's version: one listing, where asking Delta loads a snapshot of the table (and its
    history runs a Spark job), about 0.3 s a table on the benchmark's lake."""
    log = _log(spark, path)
    fs = log.getFileSystem(_hadoop_conf(spark))
    if not fs.exists(log):
        return []
    names = (status.getPath().getName() for status in fs.listStatus(log))
    return [int(name[: -len(".json")]) for name in names if COMMIT_FILE.fullmatch(name)]


def table_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Delta table (a log with at least one commit)."""
    return bool(_commit_versions(spark, path))


def merge_new(df: DataFrame, path: str, *, key: str, metadata: dict | None = None) -> tuple[int, int]:
    """Insert the rows of ``df`` whose ``key`` the table does not hold yet (one MERGE commit; the
    table is created when absent), so that writing the same rows again adds nothing.
    Return ``(version, rows inserted)``."""
    from delta.tables import DeltaTable

    spark = df.sparkSession
    if not table_exists(spark, path):
        inserted = df.count()
        return write_table(df, path, metadata=metadata), inserted
    commit_message = json.dumps(metadata or {}, sort_keys=True)
    with session_setting(spark, "spark.databricks.delta.commitInfo.userMetadata", commit_message):
        metrics = (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(df.alias("s"), f"t.`{key}` = s.`{key}`")
            .whenNotMatchedInsertAll()
            .withSchemaEvolution()
            .execute()
        )
    return latest_version(spark, path), int(metrics.first()["num_inserted_rows"])


def latest_version(spark: SparkSession, path: str) -> int:
    versions = _commit_versions(spark, path)
    if not versions:
        raise FileNotFoundError(f"{path} is not a Delta table (no commit in its _delta_log)")
    return max(versions)


def commit_metadata(spark: SparkSession, path: str, version: int) -> dict:
    """The userMetadata that was written with ``version`` (empty if none), from the version's
    commit file (one read, where Delta's history is a Spark job over every commit)."""
    commit = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(_log(spark, path), commit_file(version))
    fs = commit.getFileSystem(_hadoop_conf(spark))
    if not fs.exists(commit):
        raise ValueError(f"Delta table {path} has no version {version}")
    stream = fs.open(commit)
    try:
        text = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    return commit_user_metadata(text)


def commit_user_metadata(commit: str) -> dict:
    """The userMetadata in one commit file's text (its ``commitInfo`` action), empty if none."""
    for action in map(json.loads, commit.splitlines()):
        if "commitInfo" in action:
            meta = action["commitInfo"].get("userMetadata")
            return json.loads(meta) if meta else {}
    return {}


def read_table(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """The table at ``version`` (time travel), or its latest version."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    return reader.load(path)


def table_digest(df: DataFrame) -> str:
    """``rows:sum``: the row count and the sum (mod 2^64) of a 64-bit hash of every row, over all
    columns. Order-independent, one aggregation pass; any changed, added or lost row changes it."""
    from pyspark.sql import functions as F

    row_hash = F.xxhash64(*[F.col(c) for c in sorted(df.columns)]).cast("decimal(38,0)")
    row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(row_hash).alias("s")).first()
    total = int(row["s"] or 0) % (1 << 64)
    return f"{row['n']}:{total:016x}"


def combine_digests(a: str, b: str) -> str:
    """The ``table_digest`` of two disjoint sets of rows together, from theirs: counts and sums add."""
    (n_a, s_a), (n_b, s_b) = (d.split(":") for d in (a, b))
    return f"{int(n_a) + int(n_b)}:{(int(s_a, 16) + int(s_b, 16)) % (1 << 64):016x}"


def added_files(spark: SparkSession, path: str, version: int) -> list[str]:
    """The names of the data files that commit ``version`` added (from its entry in the Delta log)."""
    from urllib.parse import unquote

    from pyspark.sql import functions as F

    log = spark.read.json(f"{path.rstrip('/')}/_delta_log/{commit_file(version)}")
    if "add" not in log.columns:
        return []
    return [unquote(r[0]).rsplit("/", 1)[-1] for r in log.where(F.col("add").isNotNull()).select("add.path").collect()]


BAD_FILE_SIGNS = (
    "is not a Parquet file",  # no magic number: empty, truncated or another format
    "can not read class org.apache.parquet.format",  # a footer that does not decode
    "ParquetDecodingException",  # pages that do not decode
    "ChecksumException",  # bytes that no longer match the checksum written with them
    "FileNotFoundException",  # a file a table names is gone
    "FILE_NOT_EXIST",
)
"""What Spark's errors say when a Parquet file is not what it claims to be (or is gone), as
opposed to an outage: a permission, a lost executor, the storage or the JVM failing."""


def is_bad_file_error(exc: BaseException) -> bool:
    """``exc`` (from reading Parquet) means a file's content is bad, not that reading failed."""
    return isinstance(exc, Exception) and any(sign in str(exc) for sign in BAD_FILE_SIGNS)


def error_cause(exc: BaseException, limit: int = 500) -> str:
    """The most specific line of a (Py4J) error: its last ``Caused by:``, else its first line."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    causes = [line.split("Caused by: ", 1)[1] for line in lines if line.startswith("Caused by: ")]
    return (causes[-1] if causes else lines[0])[:limit]
