"""Each table's suite: a good frame passes, and each bad frame fails exactly the expectation it breaks."""

import json
from pathlib import Path

import pytest
from suite_rows import BRONZE, BRONZE_SCHEMA, CFG, EN, GOLD, GOLD_SCHEMA, QUARANTINE, SHA, SILVER, SUITES, run_suite

from tokenlake.etl.context import suite_params
from tokenlake.etl.validate import data_docs_index, validate_table


@pytest.mark.parametrize("suite", list(SUITES))
def test_good_frame_passes_and_its_result_is_written(spark, tmp_path, suite):
    result = run_suite(spark, suite, SUITES[suite][1], results_dir=tmp_path)
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
    result = run_suite(spark, suite, rows)
    assert not result.success
    assert result.failed_expectations == [failed]


def test_a_failed_count_comes_with_its_rows(spark, tmp_path):
    """A failed count names how many rows broke the rule and shows a few of them."""
    emails = [(f"e{i}", f"write to user{i}@example.com", "pos", "train", f"{100 + i:064x}", "f", *EN) for i in range(3)]
    result = run_suite(spark, "silver", SILVER + emails, results_dir=tmp_path)
    assert result.failed_expectations == ["expect_column_values_to_be_between(raw_email)"]
    assert result.unexpected == 3
    details = json.loads((tmp_path / "silver.json").read_text())
    assert details["success"] is False and details["metrics"]["raw_email"] == 3
    shown = details["examples"]["raw_email"]
    assert sorted(r["raw_email"] for r in shown) == [f"user{i}@example.com" for i in range(3)]
    assert sorted(r["id"] for r in shown) == ["e0", "e1", "e2"]


def test_a_repeated_value_is_shown_with_its_count(spark, tmp_path):
    result = run_suite(spark, "bronze", BRONZE + [("a", "again", "pos", "f")] * 2, results_dir=tmp_path)
    assert result.unexpected == 2
    details = json.loads((tmp_path / "bronze.json").read_text())
    assert details["examples"] == {"repeated_id": [{"id": "a", "rows": 3}]}


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
