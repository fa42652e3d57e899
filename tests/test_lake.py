from tokenlake.etl.lake import table_digest


def test_digest_ignores_order_and_partitioning_but_sees_any_change(spark):
    rows = [("a", [1, 2], 1), ("b", [3], 0), ("c", [4, 5, 6], 1)]
    schema = "id string, input_ids array<int>, label int"
    base = table_digest(spark.createDataFrame(rows, schema))
    assert base.startswith("3:")
    assert table_digest(spark.createDataFrame(rows[::-1], schema).repartition(3)) == base
    assert table_digest(spark.createDataFrame([("a", [1, 2], 0), *rows[1:]], schema)) != base  # a changed value
    assert table_digest(spark.createDataFrame(rows[:2], schema)) != base  # a lost row
    assert table_digest(spark.createDataFrame([*rows, rows[0]], schema)) != base  # a duplicated row
