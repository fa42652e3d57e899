import json

import pytest

from etl.validate import validate_table

PARAMS = {"max_len": 8, "max_token_id": 99, "label_ids": [0, 1]}
SCHEMA = "id string, split string, input_ids array<int>, n_tokens int, label int"
GOOD = [("a", "train", [2, 5, 3], 3, 0), ("b", "test", [2, 7, 3], 3, 1), ("c", "validation", [2, 3], 2, 1)]


def test_good_gold_frame_passes_and_result_is_written(spark, tmp_path):
    result = validate_table(spark.createDataFrame(GOOD, SCHEMA), "gold", params=PARAMS, results_dir=tmp_path)
    assert result.success and result.failed_expectations == [] and result.unexpected == 0
    assert result.evaluated == 10
    assert json.loads((tmp_path / "gold.json").read_text())["success"] is True


@pytest.mark.parametrize("bad_row, failed", [
    (("a", "train", [2, 3], 2, 0), "expect_column_values_to_be_unique(id)"),
    (("d", "train", [2, 3], 2, 5), "expect_column_values_to_be_in_set(label)"),
    (("d", "train", [2, 3], 2, None), "expect_column_values_to_not_be_null(label)"),
    (("d", "train", [2, 3] * 5, 10, 0), "expect_column_values_to_be_between(n_tokens)"),
    (("d", "train", [2, 100], 2, 0), "expect_column_values_to_be_between(max_token_id)"),
    (("d", "train", [-1, 3], 2, 0), "expect_column_values_to_be_between(min_token_id)"),
    (("d", "dev", [2, 3], 2, 0), "expect_column_values_to_be_in_set(split)"),
    ((None, "train", [2, 3], 2, 0), "expect_column_values_to_not_be_null(id)"),
])
def test_each_bad_gold_row_fails_the_expectation_it_breaks(spark, bad_row, failed):
    result = validate_table(spark.createDataFrame(GOOD + [bad_row], SCHEMA), "gold", params=PARAMS)
    assert not result.success
    assert result.failed_expectations == [failed]


def test_missing_column_fails_the_table_expectation(spark):
    df = spark.createDataFrame([("a", "train", [2, 3], 0)], "id string, split string, input_ids array<int>, label int")
    result = validate_table(df, "gold", params=PARAMS)
    assert "expect_table_columns_to_match_set" in result.failed_expectations


def test_causal_lm_gold_needs_no_label(spark):
    df = spark.createDataFrame([("a", "train", [2, 3], 2)], "id string, split string, input_ids array<int>, n_tokens int")
    assert validate_table(df, "gold", params=PARAMS, task="causal-lm").success


def test_unknown_suite_is_a_clear_error(spark):
    with pytest.raises(KeyError, match="no expectation suite 'platinum'"):
        validate_table(spark.createDataFrame(GOOD, SCHEMA), "platinum", params=PARAMS)
