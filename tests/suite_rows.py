"""Small tables for each suite (a good frame of each) and a helper that validates one, shared by
test_validate.py (the suites) and test_metrics.py (the metrics they judge)."""

from tokenlake.etl.config import EtlConfig
from tokenlake.etl.context import row_params, suite_params
from tokenlake.etl.validate import validate_table

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


def run_suite(spark, suite, rows, task="classification", results_dir=None):
    schema, _, extra = SUITES[suite]
    return validate_table(
        spark.createDataFrame(rows, schema),
        suite,
        params=suite_params(suite, CFG, **extra),
        row_params=row_params(suite, CFG),
        task=task,
        results_dir=results_dir,
    )
