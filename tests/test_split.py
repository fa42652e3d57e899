from tokenlake.etl.split import assign_split


def test_split_is_deterministic_proportional_and_stable_under_appends(spark):
    ids = spark.range(20_000).selectExpr("concat('doc-', id) as id")
    first = {r["id"]: r["split"] for r in ids.transform(assign_split, fractions=(0.8, 0.1, 0.1), salt="s").collect()}
    counts = {s: sum(1 for v in first.values() if v == s) for s in ("train", "validation", "test")}
    assert abs(counts["train"] / 20_000 - 0.8) < 0.01
    assert abs(counts["validation"] / 20_000 - 0.1) < 0.01
    assert abs(counts["test"] / 20_000 - 0.1) < 0.01
    # more data, other partitioning: no existing id moves
    more = spark.range(30_000).selectExpr("concat('doc-', id) as id").repartition(7)
    again = {r["id"]: r["split"] for r in more.transform(assign_split, fractions=(0.8, 0.1, 0.1), salt="s").collect()}
    assert all(again[k] == v for k, v in first.items())
    other_salt = {
        r["id"]: r["split"] for r in ids.transform(assign_split, fractions=(0.8, 0.1, 0.1), salt="t").collect()
    }
    assert other_salt != first


def test_zero_fraction_split_is_empty(spark):
    ids = spark.range(1000).selectExpr("cast(id as string) as id")
    splits = {r["split"] for r in ids.transform(assign_split, fractions=(0.9, 0.0, 0.1), salt="s").collect()}
    assert splits == {"train", "test"}
