"""Balanced partitions: the number of output files from the data's size, and rows spread so that
every file holds about the same weight (characters or tokens), whatever the input's skew.

Rows are laid end to end (in their current order) and cut into ``n`` runs of equal weight: each
row's running weight comes from a window inside its input partition plus the total weight of the
partitions before it (one small aggregate per input partition reaches the driver, never rows).
Run ``i`` then goes to output partition ``i`` exactly: ``repartition(n, key)`` hashes ``key``, so
each ``i`` is given a key whose hash lands in partition ``i``. The largest partition exceeds the
mean by at most one row's weight.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

_PART, _WEIGHT = "_part", "_weight"


def partition_keys(spark, n: int) -> list[int]:
    """For each partition ``i < n`` an integer whose Spark hash sends it to partition ``i``."""
    found: dict[int, int] = {}
    start = 0
    while len(found) < n:
        rows = (
            spark.range(start, start + 64 * n)
            .select("id", F.pmod(F.hash("id"), F.lit(n)).alias("p"))
            .groupBy("p")
            .agg(F.min("id").alias("id"))
            .collect()
        )
        for row in rows:
            found.setdefault(row["p"], row["id"])
        start += 64 * n
    return [found[i] for i in range(n)]


def max_over_mean(weights: list[float], n: int) -> float:
    """Largest partition's weight over the mean weight of ``n`` partitions (empty ones count)."""
    total = sum(weights)
    return max(weights, default=0) / (total / n) if total else 1.0


def file_count(total_weight: int, *, target_per_file: int, min_files: int = 1) -> int:
    return max(min_files, -(-total_weight // target_per_file))


def balance_partitions(df: DataFrame, *, weight: Column, files: int) -> DataFrame:
    """``df`` in ``files`` partitions of about equal total ``weight``. ``df`` should be
    persisted: its partitions are read twice (their totals, then their rows)."""
    spark, n = df.sparkSession, files
    weighted = df.withColumn(_WEIGHT, weight.cast("long")).withColumn("_pid", F.spark_partition_id())
    per_input = {r["_pid"]: r["w"] or 0 for r in weighted.groupBy("_pid").agg(F.sum(_WEIGHT).alias("w")).collect()}
    total, offsets, running = sum(per_input.values()), {}, 0
    for pid in sorted(per_input):
        offsets[pid] = running
        running += per_input[pid]
    if not offsets:
        return df.repartition(n)
    offset = F.element_at(F.create_map(*[F.lit(x) for p, o in offsets.items() for x in (p, o)]), F.col("_pid"))
    order = Window.partitionBy("_pid").orderBy(F.monotonically_increasing_id())
    start = offset + F.sum(_WEIGHT).over(order) - F.col(_WEIGHT)  # weight of all rows before this one
    part = F.least(F.floor(start * n / F.lit(max(total, 1))), F.lit(n - 1)).cast("int")
    keys = F.array(*[F.lit(k).cast("long") for k in partition_keys(spark, n)])  # hashed as they were found
    placed = weighted.withColumn("_key", F.element_at(keys, part + 1))
    return placed.repartition(n, "_key").drop("_pid", "_key", _WEIGHT)


def balance_report(before: DataFrame, written: DataFrame, *, weight: Column, files: int) -> dict:
    """``{"count", "max_over_mean_before", "max_over_mean_after"}``: *before* over the partitions
    the rows arrived in, *after* over the files of ``written`` (a table read back)."""
    arrived = before.groupBy(F.spark_partition_id()).agg(F.sum(weight)).collect()
    stored = written.groupBy(F.col("_metadata.file_path")).agg(F.sum(weight)).collect()
    return {
        "count": len(stored),
        "max_over_mean_before": round(max_over_mean([r[1] for r in arrived], before.rdd.getNumPartitions()), 4),
        "max_over_mean_after": round(max_over_mean([r[1] for r in stored], files), 4),
    }
