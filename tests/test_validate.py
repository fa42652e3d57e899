"""Each table's suite: a good frame passes, and each bad frame fails exactly the expectation it breaks."""

import json

import pytest

from etl.config import EtlConfig
from etl.pipeline import suite_params
from etl.validate import data_docs_index, split_bounds, validate_table

CFG = EtlConfig(max_len=8, raw_keep_chars=20)
SHA = "a" * 64

GOLD_SCHEMA = "id string, split string, input_ids array<int>, n_tokens int, label int"
GOLD = [(f"g{i}", s, [2, 5, 3], 3, i % 2) for i, s in enumerate(["train"] * 8 + ["validation", "test"])]
BRONZE_SCHEMA = "id string, text string, label string, source_file string"
BRONZE = [("a", "some text", "pos", "f.jsonl"), ("b", "more text", "neg", "f.jsonl")]
SILVER_SCHEMA = "id string, text string, label string, split string, content_sha256 string, source_file string"
SILVER = [
    (f"s{i}", f"text {i}", "pos", s, f"{i:064x}", "f") for i, s in enumerate(["train"] * 8 + ["validation", "test"])
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
    params = suite_params(suite, CFG, len(rows), **extra)
    return validate_table(spark.createDataFrame(rows, schema), suite, params=params, task=task, results_dir=results_dir)


@pytest.mark.parametrize("suite", list(SUITES))
def test_good_frame_passes_and_its_result_is_written(spark, tmp_path, suite):
    result = _run(spark, suite, SUITES[suite][1], results_dir=tmp_path)
    assert result.success, result.failed_expectations
    assert result.unexpected == 0 and result.evaluated > 3
    assert json.loads((tmp_path / f"{suite}.json").read_text())["success"] is True
    assert f"{suite}.html" in {p.name for p in data_docs_index(tmp_path).parent.rglob("*.html")}


BAD = [
    ("gold", GOLD + [("g0", "train", [2, 3], 2, 0)], "expect_column_values_to_be_unique(id)"),
    ("gold", GOLD + [("x", "train", [2, 3], 2, 5)], "expect_column_values_to_be_in_set(label)"),
    ("gold", GOLD + [("x", "train", [2, 3], 2, None)], "expect_column_values_to_not_be_null(label)"),
    ("gold", GOLD + [("x", "train", [2, 3] * 5, 10, 0)], "expect_column_values_to_be_between(n_tokens)"),
    ("gold", GOLD + [("x", "train", [2, 100], 2, 0)], "expect_column_values_to_be_between(max_token_id)"),
    ("gold", GOLD + [("x", "train", [-1, 3], 2, 0)], "expect_column_values_to_be_between(min_token_id)"),
    ("gold", GOLD + [("x", "dev", [2, 3], 2, 0)], "expect_column_values_to_be_in_set(split)"),
    ("gold", GOLD + [(None, "train", [2, 3], 2, 0)], "expect_column_values_to_not_be_null(id)"),
    ("bronze", BRONZE + [("a", "dup id", "pos", "f")], "expect_column_values_to_be_unique(id)"),
    ("bronze", BRONZE + [("c", None, "pos", "f")], "expect_column_values_to_not_be_null(text)"),
    ("bronze", BRONZE + [("c", "t", None, "f")], "expect_column_values_to_not_be_null(label)"),
    (
        "silver",
        SILVER + [("s99", "text 1", "pos", "test", f"{1:064x}", "f")],
        "expect_column_values_to_be_unique(content_sha256)",
    ),
    (
        "silver",
        SILVER + [("s99", "mail me at jo.doe@example.com", "pos", "train", SHA, "f")],
        "expect_column_values_to_be_null(raw_email)",
    ),
    (
        "silver",
        SILVER + [("s99", "card 4111 1111 1111 1111 ok", "pos", "train", SHA, "f")],
        "expect_column_values_to_be_null(raw_card_number)",
    ),
    (
        "silver",
        SILVER + [("s99", "x", "pos", "train", "not-a-hash", "f")],
        "expect_column_values_to_match_regex(content_sha256)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", "because", "ingest", "f", "x")],
        "expect_column_values_to_be_in_set(reject_reason)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", "malformed_json", "ingest", "f", "x" * 21)],
        "expect_column_value_lengths_to_be_between(raw)",
    ),
    (
        "quarantine",
        QUARANTINE + [("q3", None, "ingest", "f", "x")],
        "expect_column_values_to_not_be_null(reject_reason)",
    ),
]


@pytest.mark.parametrize("suite, rows, failed", BAD, ids=[f"{s}-{f}" for s, _, f in BAD])
def test_each_bad_frame_fails_the_expectation_it_breaks(spark, suite, rows, failed):
    result = _run(spark, suite, rows)
    assert not result.success
    assert result.failed_expectations == [failed]


def test_a_failed_suite_is_rerun_for_its_details(spark, tmp_path):
    """Passing suites are checked for their verdict only; a failure brings counts and examples."""
    emails = [(f"e{i}", f"write to user{i}@example.com", "pos", "train", f"{100 + i:064x}", "f") for i in range(3)]
    result = _run(spark, "silver", SILVER + emails, results_dir=tmp_path)
    assert result.failed_expectations == ["expect_column_values_to_be_null(raw_email)"]
    assert result.unexpected == 3
    details = json.loads((tmp_path / "silver.json").read_text())
    failed = next(r for r in details["results"] if not r["success"])
    assert sorted(failed["result"]["partial_unexpected_list"]) == [f"user{i}@example.com" for i in range(3)]


def test_split_proportions_within_two_points_on_a_large_table(spark):
    skewed = spark.range(10_000).selectExpr(
        "concat('s', id) as id",
        "concat('t', id) as text",
        "'pos' as label",
        "case when id < 8500 then 'train' when id < 9250 then 'validation' else 'test' end as split",
        "sha2(cast(id as string), 256) as content_sha256",
        "'f' as source_file",
    )
    result = validate_table(skewed, "silver", params=suite_params("silver", CFG, 10_000))
    assert result.failed_expectations == [
        "expect_column_mean_to_be_between(is_train)",
        "expect_column_mean_to_be_between(is_validation)",
        "expect_column_mean_to_be_between(is_test)",
    ]


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
    result = validate_table(df, "gold", params=suite_params("gold", CFG, 1, vocab_size=100, labels=["a"]))
    assert "expect_table_columns_to_match_set" in result.failed_expectations


def test_causal_lm_tables_need_no_label(spark):
    df = spark.createDataFrame(
        [("a", "train", [2, 3], 2)], "id string, split string, input_ids array<int>, n_tokens int"
    )
    assert validate_table(df, "gold", params=suite_params("gold", CFG, 1, vocab_size=100), task="causal-lm").success


def test_unknown_suite_is_a_clear_error(spark):
    with pytest.raises(KeyError, match="no expectation suite 'platinum'"):
        validate_table(spark.createDataFrame(GOLD, GOLD_SCHEMA), "platinum", params={})
