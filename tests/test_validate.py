"""Each table's suite: a good frame passes, and each bad frame fails exactly the expectation it breaks."""

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tokenlake.etl import metrics as etl_metrics
from tokenlake.etl import validate as etl_validate
from tokenlake.etl.config import EtlConfig
from tokenlake.etl.context import row_params, suite_params
from tokenlake.etl.metrics import compute_metrics, split_bounds
from tokenlake.etl.validate import data_docs_index, validate_table

CFG = EtlConfig(max_len=8, raw_keep_chars=20)
SILVER_PARAMS = suite_params("silver", CFG)
EN = ("en", 0.9)  # a silver row's lang and lang_confidence
SHA = "a" * 64

GOLD_SCHEMA = "id string, split string, input_ids array<int>, n_tokens int, label int"
GOLD = [(f"g{i}", s, [2, 5, 3], 3, i % 2) for i, s in enumerate(["train"] * 8 + ["validation", "test"])]
BRONZE_SCHEMA = "id string, text string, label string, source_file string"
BRONZE = [("a", "some text", "pos", "f.jsonl"), ("b", "more text", "neg", "f.jsonl")]
SILVER_SCHEMA = (
    "id string, text string, label string, split string, content_sha256 string, source_file string, "
    "lang string, lang_confidence double"
)
SILVER = [
    (f"s{i}", f"text {i}", "pos", s, f"{i:064x}", "f", *EN)
    for i, s in enumerate(["train"] * 8 + ["validation", "test"])
]
QUARANTINE_SCHEMA = "id string, reject_reason string, stage string, source_file string, raw string"
QUARANTINE = [("q1", "malformed_json", "ingest", "f", "{bad"), (None, "empty_after_clean", "clean", "f", "  ")]

SUITES = {
    "gold": (GOLD_SCHEMA, GOLD, {"vocab_size": 100, "labels": ["neg", "pos"]}),
    "bronze": (BRONZE_SCHEMA, BRONZE, {}),
    "silver": (SILVER_SCHEMA, SILVER, {}),
    "quarantine": (QUARANTINE_SCHEMA, QUARANTINE, {}),
}


def _run(spark, suite, rows, task="classification", results_dir=None):
    schema, _, extra = SUITES[suite]
    return validate_table(
        spark.createDataFrame(rows, schema),
        suite,
        params=suite_params(suite, CFG, **extra),
        row_params=row_params(suite, CFG),
        task=task,
        results_dir=results_dir,
    )


@pytest.mark.parametrize("suite", list(SUITES))
def test_good_frame_passes_and_its_result_is_written(spark, tmp_path, suite):
    result = _run(spark, suite, SUITES[suite][1], results_dir=tmp_path)
    assert result.success, result.failed_expectations
    assert result.unexpected == 0 and result.evaluated > 3
    assert json.loads((tmp_path / f"{suite}.json").read_text())["success"] is True
    assert f"{suite}.html" in {p.name for p in data_docs_index(tmp_path).parent.rglob("*.html")}


BAD = [
    ("gold", GOLD + [("g0", "train", [2, 3], 2, 0)], "expect_column_values_to_be_between(repeated_id)"),
    ("gold", GOLD + [("x", "train", [2, 3], 2, 5)], "expect_column_values_to_be_between(null_or_unknown_label)"),
    ("gold", GOLD + [("x", "train", [2, 3], 2, None)], "expect_column_values_to_be_between(null_or_unknown_label)"),
    ("gold", GOLD + [("x", "train", [2, 3] * 5, 10, 0)], "expect_column_values_to_be_between(n_tokens_out_of_bounds)"),
    ("gold", GOLD + [("x", "train", [2, 100], 2, 0)], "expect_column_values_to_be_between(token_id_beyond_vocabulary)"),
    ("gold", GOLD + [("x", "train", [-1, 3], 2, 0)], "expect_column_values_to_be_between(token_id_below_0)"),
    ("gold", GOLD + [("x", "dev", [2, 3], 2, 0)], "expect_column_values_to_be_between(null_or_unknown_split)"),
    ("gold", GOLD + [(None, "train", [2, 3], 2, 0)], "expect_column_values_to_be_between(null_id)"),
    ("bronze", BRONZE + [("a", "dup id", "pos", "f")], "expect_column_values_to_be_between(repeated_id)"),
    ("bronze", BRONZE + [("c", None, "pos", "f")], "expect_column_values_to_be_between(null_text)"),
    ("bronze", BRONZE + [("c", "t", None, "f")], "expect_column_values_to_be_between(null_label)"),
    (
        "silver",
        SILVER + [("s99", "text 1", "pos", "test", f"{1:064x}", "f", *EN)],
        "expect_column_values_to_be_between(repeated_content_sha256)",
    ),
    (
        "silver",
        SILVER + [("s99", "mail me at jo.doe@example.com", "pos", "train", SHA, "f", *EN)],
        "expect_column_values_to_be_between(raw_email)",
    ),
    (
        "silver",
        SILVER + [("s99", "card 4111 1111 1111 1111 ok", "pos", "train", SHA, "f", *EN)],
        "expect_column_values_to_be_between(raw_card_number)",
    ),
    (
        "silver",
        SILVER + [("s99", "", "pos", "train", SHA, "f", *EN)],
        "expect_column_values_to_be_between(null_or_empty_text)",
    ),
    (
        "silver",
        SILVER + [("s99", "x", "pos", "train", "not-a-hash", "f", *EN)],
        "expect_column_values_to_be_between(malformed_content_sha256)",
    ),
    (
        "silver",
        SILVER + [("s99", "x", "pos", "train", SHA, "f", None, 0.9)],
        "expect_column_values_to_be_between(null_or_bad_lang)",
    ),
    (
        "silver",
        SILVER + [("s99", "x", "pos", "train", SHA, "f", "en", 1.5)],
        "expect_column_values_to_be_between(null_or_bad_lang)",
    ),
    (
        "silver",
        SILVER + [("s99", "x", "pos", "train", SHA, "f", "xx", 0.9)],
        "expect_column_values_to_be_between(unwanted_lang)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", "because", "ingest", "f", "x")],
        "expect_column_values_to_be_between(unknown_reject_reason)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", "malformed_json", "ingest", "f", "x" * 21)],
        "expect_column_values_to_be_between(longest_raw)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", None, "ingest", "f", "x")],
        "expect_column_values_to_be_between(null_reject_reason)",
    ),
]


@pytest.mark.parametrize("suite, rows, failed", BAD, ids=[f"{s}-{f}" for s, _, f in BAD])
def test_each_bad_frame_fails_the_expectation_it_breaks(spark, suite, rows, failed):
    result = _run(spark, suite, rows)
    assert not result.success
    assert result.failed_expectations == [failed]


def test_a_failed_count_comes_with_its_rows(spark, tmp_path):
    """A failed count names how many rows broke the rule and shows a few of them."""
    emails = [(f"e{i}", f"write to user{i}@example.com", "pos", "train", f"{100 + i:064x}", "f", *EN) for i in range(3)]
    result = _run(spark, "silver", SILVER + emails, results_dir=tmp_path)
    assert result.failed_expectations == ["expect_column_values_to_be_between(raw_email)"]
    assert result.unexpected == 3
    details = json.loads((tmp_path / "silver.json").read_text())
    assert details["success"] is False and details["metrics"]["raw_email"] == 3
    shown = details["examples"]["raw_email"]
    assert sorted(r["raw_email"] for r in shown) == [f"user{i}@example.com" for i in range(3)]
    assert sorted(r["id"] for r in shown) == ["e0", "e1", "e2"]


def test_a_repeated_value_is_shown_with_its_count(spark, tmp_path):
    result = _run(spark, "bronze", BRONZE + [("a", "again", "pos", "f")] * 2, results_dir=tmp_path)
    assert result.unexpected == 2
    details = json.loads((tmp_path / "bronze.json").read_text())
    assert details["examples"] == {"repeated_id": [{"id": "a", "rows": 3}]}


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
    assert _run(spark, "bronze", BRONZE).success
    result = _run(spark, "bronze", BRONZE + [("a", "again", "pos", "f")])
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


def test_missing_column_fails_the_table_expectation(spark):
    df = spark.createDataFrame([("a", "train", [2, 3], 0)], "id string, split string, input_ids array<int>, label int")
    result = validate_table(df, "gold", params=suite_params("gold", CFG, vocab_size=100, labels=["a"]))
    assert "expect_table_columns_to_match_set" in result.failed_expectations


def test_causal_lm_tables_need_no_label(spark):
    df = spark.createDataFrame(
        [("a", "train", [2, 3], 2)], "id string, split string, input_ids array<int>, n_tokens int"
    )
    assert validate_table(df, "gold", params=suite_params("gold", CFG, vocab_size=100), task="causal-lm").success


def test_an_expectation_over_an_undefined_metric_is_an_error(spark, tmp_path):
    suite = json.loads((Path(__file__).parents[1] / "expectations" / "bronze.json").read_text())
    del suite["metrics"]["null_text"]
    (tmp_path / "bronze.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"expect_column_values_to_be_between\(null_text\) names no metric"):
        validate_table(spark.createDataFrame(BRONZE, BRONZE_SCHEMA), "bronze", params={}, suite_dir=str(tmp_path))


def test_unknown_suite_is_a_clear_error(spark):
    with pytest.raises(KeyError, match="no expectation suite 'platinum'"):
        validate_table(spark.createDataFrame(GOLD, GOLD_SCHEMA), "platinum", params={})


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
