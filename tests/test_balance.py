import random

from pyspark.sql import functions as F

from tokenlake.etl.balance import balance_partitions, balance_report, file_count, max_over_mean, partition_keys


def test_partition_keys_hash_to_their_own_partition(spark):
    keys = partition_keys(spark, 7)
    df = spark.createDataFrame([(k,) for k in keys], "k long")
    assert [r[0] for r in df.select(F.pmod(F.hash("k"), F.lit(7))).collect()] == list(range(7))


def test_file_count_and_ratio():
    assert file_count(0, target_per_file=10, min_files=2) == 2
    assert file_count(101, target_per_file=10) == 11
    assert max_over_mean([3, 1], 2) == 1.5 and max_over_mean([3], 3) == 3.0 and max_over_mean([], 2) == 1.0


def test_skewed_input_comes_out_within_a_tenth_of_the_mean(spark, tmp_path):
    """One source holds 80% of the rows and lengths are Pareto: the input's partitions (one per
    source) are far apart, the written files are not, and no row is lost or duplicated."""
    rng = random.Random(0)
    rows = [
        (f"d{i}", "big" if rng.random() < 0.8 else "small", min(int(rng.paretovariate(1.2) * 10), 5000))
        for i in range(20_000)
    ]
    df = spark.createDataFrame(rows, "id string, source string, n int").repartitionByRange(2, "source").persist()
    files = file_count(df.agg(F.sum("n")).first()[0], target_per_file=100_000)
    balance_partitions(df, weight=F.col("n"), files=files).write.format("delta").save(str(tmp_path / "t"))
    written = spark.read.format("delta").load(str(tmp_path / "t"))
    report = balance_report(df, written, weight=F.col("n"), files=files)
    assert report["count"] == files > 3
    assert report["max_over_mean_before"] > 1.5 and report["max_over_mean_after"] <= 1.1, report
    assert sorted(r["id"] for r in written.select("id").collect()) == sorted(r[0] for r in rows)
    df.unpersist()
