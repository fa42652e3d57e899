from tokenlake.etl.dedup import mark_exact_duplicates, with_content_hash


def test_exact_duplicates_keep_the_smallest_id(spark):
    df = spark.createDataFrame([("b", "same"), ("a", "same"), ("c", "other"), ("d", "same")], "id string, text string")
    out = {
        r["id"]: r["is_duplicate"] for r in df.transform(with_content_hash).transform(mark_exact_duplicates).collect()
    }
    assert out == {"a": False, "b": True, "c": False, "d": True}


def test_a_stored_content_keeps_its_stored_row_and_marks_every_other(spark):
    stored = spark.createDataFrame([("b", "same"), ("z", "kept")], "id string, text string").transform(
        with_content_hash
    )
    rows = [("a", "same"), ("b", "same"), ("c", "new"), ("y", "kept"), ("d", "new")]
    df = spark.createDataFrame(rows, "id string, text string").transform(with_content_hash)
    out = {r["id"]: (r["is_duplicate"], r["is_stored"]) for r in mark_exact_duplicates(df, stored=stored).collect()}
    # "b" is stored under this content, so it wins over the smaller "a"; "kept" is stored under "z",
    # which this input does not hold, so "y" is a duplicate; "new" keeps its smallest id
    assert out == {"a": (True, False), "b": (False, True), "c": (False, False), "y": (True, False), "d": (True, False)}
