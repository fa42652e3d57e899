"""The metrics a suite judges (``etl.metrics``): one Spark query per suite on a cached frame,
parameters bound outside quoted strings, split bounds that follow the rows counted, repeated
values found by hash and recounted exactly, and an append judged by its new rows."""

import json

import pytest
from pyspark.sql import functions as F
from suite_rows import BRONZE, CFG, EN, SHA, SILVER, SILVER_PARAMS, SILVER_SCHEMA, SUITES, run_suite

from tokenlake.etl import metrics as etl_metrics
from tokenlake.etl import validate as etl_validate
from tokenlake.etl.context import row_params, suite_params
from tokenlake.etl.metrics import compute_metrics, split_bounds
from tokenlake.etl.validate import validate_table


def _queries_that_ran_jobs(spark) -> dict[int, str]:
    """SQL executions that ran Spark jobs, by id (the store keeps only the latest ones)."""
    executions = spark._jsparkSession.sharedState().statusStore().executionsList()
    found = (executions.apply(i) for i in range(executions.size()))
    return {e.executionId(): e.description() for e in found if e.jobs().size()}


def test_a_passing_suite_costs_one_spark_query(spark):
    """Every metric of a suite, and the row count its split bounds need, come from one
    aggregation; GX reads the schema without a job."""
    df = spark.createDataFrame(SILVER, SILVER_SCHEMA)
    df.count()
    before = max(_queries_that_ran_jobs(spark))
    assert validate_table(df, "silver", params=SILVER_PARAMS, row_params=row_params("silver", CFG)).success
    ran = [d for i, d in _queries_that_ran_jobs(spark).items() if i > before]
    assert len(ran) == 1 and "metrics.py" in ran[0], ran


@pytest.mark.parametrize("suite", ["quarantine", "silver"])
def test_the_validated_table_stays_cached(spark, suite):
    """The pipeline validates cached frames and then writes them: validation must neither
    recompute them nor drop their cache (as a temporary view of the same plan would)."""
    schema, rows, extra = SUITES[suite]
    computed = spark.sparkContext.accumulator(0)

    @F.udf("string")
    def counted(value):
        computed.add(1)
        return value

    df = spark.createDataFrame(rows, schema).withColumn("id", counted("id")).persist()
    df.count()
    assert computed.value == len(rows)
    params = suite_params(suite, CFG, **extra)
    assert validate_table(df, suite, params=params, row_params=row_params(suite, CFG)).success
    assert df.where(F.col("id").isNull()).count() == sum(r[0] is None for r in rows)
    assert computed.value == len(rows)
    df.unpersist()


def test_parameters_bind_outside_quoted_strings_only(spark):
    df = spark.createDataFrame([("a:b", 3)], "s string, n int")
    metrics = {
        "quoted": {"rows_where": "s = 'a:b'"},
        "bound": {"rows_where": "n > :limit"},
        "cast": {"aggregate": "max(n)::string"},
    }
    assert compute_metrics(df, metrics, {"limit": 2}) == {"rows": 1, "quoted": 1, "bound": 1, "cast": "3"}
    with pytest.raises(ValueError, match="suite parameter 'limit' is not set"):
        compute_metrics(df, metrics, {})


def test_split_proportions_within_two_points_on_a_large_table(spark):
    skewed = spark.range(10_000).selectExpr(
        "concat('s', id) as id",
        "concat('t', id) as text",
        "'pos' as label",
        "case when id < 8500 then 'train' when id < 9250 then 'validation' else 'test' end as split",
        "sha2(cast(id as string), 256) as content_sha256",
        "'f' as source_file",
        "'en' as lang",
        "0.9 as lang_confidence",
    )
    result = validate_table(skewed, "silver", params=SILVER_PARAMS, row_params=row_params("silver", CFG))
    assert result.failed_expectations == [
        "expect_column_values_to_be_between(train_share)",
        "expect_column_values_to_be_between(validation_share)",
        "expect_column_values_to_be_between(test_share)",
    ]


def test_split_bounds_follow_the_rows_the_metrics_pass_counted(spark, tmp_path):
    """The same skew (75/15/10 against 80/10/10) passes on 100 rows, where 4 standard errors
    exceed 2 points, and fails on 10,000 (above)."""
    small = spark.range(100).selectExpr(
        "concat('s', id) as id",
        "concat('t', id) as text",
        "'pos' as label",
        "case when id < 75 then 'train' when id < 90 then 'validation' else 'test' end as split",
        "sha2(cast(id as string), 256) as content_sha256",
        "'f' as source_file",
        "'en' as lang",
        "0.9 as lang_confidence",
    )
    result = validate_table(
        small, "silver", params=SILVER_PARAMS, row_params=row_params("silver", CFG), results_dir=tmp_path
    )
    assert result.success, result.failed_expectations
    assert json.loads((tmp_path / "silver.json").read_text())["metrics"]["rows"] == 100


def test_a_hash_collision_does_not_count_as_a_repeated_value(spark, monkeypatch):
    """Repeated values are found by hash first; where hashes repeat, the values are counted
    exactly. A deliberately weak hash (the length) makes every id of BRONZE collide."""
    monkeypatch.setattr(etl_metrics, "REPEATED_KEY", "length({})")
    assert run_suite(spark, "bronze", BRONZE).success
    result = run_suite(spark, "bronze", BRONZE + [("a", "again", "pos", "f")])
    assert result.failed_expectations == ["expect_column_values_to_be_between(repeated_id)"]
    assert result.unexpected == 1


def test_split_bounds_are_two_points_once_the_table_is_large():
    assert split_bounds((0.8, 0.1, 0.1), 100_000) == pytest.approx(
        {
            "train_min": 0.78,
            "train_max": 0.82,
            "validation_min": 0.08,
            "validation_max": 0.12,
            "test_min": 0.08,
            "test_max": 0.12,
        }
    )
    assert split_bounds((0.8, 0.1, 0.1), 100)["train_min"] < 0.78


def test_an_append_is_judged_by_its_new_rows_the_stored_keys_and_whole_table_shares(spark):
    """``stored=``: per-row rules read the new rows only (the stored ones passed when published),
    a repeated key counts the new rows' values that the stored table holds, and a share (scope
    ``table``) is taken over stored and new rows together."""
    stored = spark.createDataFrame(SILVER, SILVER_SCHEMA)
    new = [(f"n{i}", f"new {i}", "pos", "train", f"{100 + i:064x}", "f", *EN) for i in range(2)]
    metrics = {name: spec for name, spec in etl_validate.load_suite("silver", None)["metrics"].items()}
    frame = spark.createDataFrame(new, SILVER_SCHEMA)
    values = compute_metrics(frame, metrics, SILVER_PARAMS, stored=stored)
    assert values["rows"] == 12 and values["train_share"] == 10 / 12
    assert values["repeated_id"] == 0 and values["repeated_content_sha256"] == 0

    clash = new + [
        ("s3", "changed", "pos", "train", f"{3:064x}", "f", *EN),
        ("n0", "again", "pos", "test", SHA, "f", *EN),
    ]
    values = compute_metrics(spark.createDataFrame(clash, SILVER_SCHEMA), metrics, SILVER_PARAMS, stored=stored)
    assert (values["repeated_id"], values["repeated_content_sha256"]) == (2, 1)  # s3 stored; n0 twice; sha of s3

    # a stored row that breaks a per-row rule is not judged again, a new one is
    bad_stored = stored.unionByName(spark.createDataFrame([("s99", "", "pos", "train", SHA, "f", *EN)], SILVER_SCHEMA))
    assert compute_metrics(frame, metrics, SILVER_PARAMS, stored=bad_stored)["null_or_empty_text"] == 0
    bad_new = spark.createDataFrame([("n9", "", "pos", "train", SHA, "f", *EN)], SILVER_SCHEMA)
    result = validate_table(
        bad_new, "silver", params=SILVER_PARAMS, row_params=row_params("silver", CFG), stored=stored
    )
    assert not result.success
    assert result.failed_expectations == ["expect_column_values_to_be_between(null_or_empty_text)"]


def test_a_repeated_hash_in_an_append_is_recounted_over_the_values(spark, monkeypatch):
    monkeypatch.setattr(etl_metrics, "REPEATED_KEY", "length({})")  # every id of one length "collides"
    stored = spark.createDataFrame(SILVER, SILVER_SCHEMA)
    new = spark.createDataFrame([("n1", "x y", "pos", "train", f"{77:064x}", "f", *EN)], SILVER_SCHEMA)
    metrics = {"repeated_id": {"repeated": "id"}}
    assert compute_metrics(new, metrics, SILVER_PARAMS, stored=stored)["repeated_id"] == 0
    again = spark.createDataFrame([("s1", "x y", "pos", "train", f"{77:064x}", "f", *EN)], SILVER_SCHEMA)
    assert compute_metrics(again, metrics, SILVER_PARAMS, stored=stored)["repeated_id"] == 1


def test_an_append_without_table_scope_metrics_counts_the_stored_rows_beside_its_own(spark):
    """Without a share to take over the whole table, the stored rows are only counted (quarantine's
    suite), or scanned for the new keys (bronze's): ``rows`` is still the table's."""
    stored = spark.createDataFrame(SILVER, SILVER_SCHEMA)
    new = [(f"n{i}", f"new {i}", "pos", "train", f"{100 + i:064x}", "f", *EN) for i in range(2)]
    frame = spark.createDataFrame(new, SILVER_SCHEMA)
    per_row = {"null_id": {"rows_where": "id IS NULL"}, "longest": {"aggregate": "max(length(text))", "scope": "rows"}}
    assert compute_metrics(frame, per_row, SILVER_PARAMS, stored=stored) == {"rows": 12, "null_id": 0, "longest": 5}
    keyed = {**per_row, "repeated_id": {"repeated": "id"}}
    assert compute_metrics(frame, keyed, SILVER_PARAMS, stored=stored)["rows"] == 12
    clash = spark.createDataFrame([*new, ("s3", "changed", "pos", "train", SHA, "f", *EN)], SILVER_SCHEMA)
    values = compute_metrics(clash, keyed, SILVER_PARAMS, stored=stored)
    assert (values["rows"], values["repeated_id"]) == (13, 1)
