"""Exact de-duplication on the SHA-256 of the cleaned text: one row per content is kept.

Which one does not depend on partitioning: the row already stored under that content (when this
input holds it again), else the one with the smallest id. A content stored under another id makes
every row of it a duplicate, so a re-run or an appended file never stores a content twice.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window


def with_content_hash(df: DataFrame) -> DataFrame:
    return df.withColumn("content_sha256", F.sha2("text", 256))


def mark_exact_duplicates(df: DataFrame, *, stored: DataFrame | None = None) -> DataFrame:
    """Add ``is_duplicate`` and ``is_stored`` (this row is the one ``stored`` holds: its
    ``content_sha256, id``, e.g. the silver table)."""
    if stored is None:
        stored_id = F.lit(None).cast("string")
    else:
        known = stored.select("content_sha256", F.col("id").alias("_stored_id"))
        df, stored_id = df.join(known, "content_sha256", "left"), F.col("_stored_id")
    is_stored = F.coalesce(stored_id == F.col("id"), F.lit(False))
    rank = F.row_number().over(Window.partitionBy("content_sha256").orderBy(is_stored.desc(), "id"))
    other_stored = stored_id.isNotNull() & ~is_stored
    return (
        df.withColumn("is_duplicate", (rank > 1) | other_stored).withColumn("is_stored", is_stored).drop("_stored_id")
    )
