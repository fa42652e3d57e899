"""Great Expectations gate: a table version that fails its suite is never published or trained on.

``validate_table`` runs one suite from ``expectations/`` over a DataFrame, writes GX's JSON result
under the results directory and returns a compact summary. A strict suite is first run for its
verdict only (GX bundles the row checks into few Spark jobs); the detailed run, with unexpected
counts and sample values, happens only when it fails. Array columns are checked through
derived scalar columns (GX length checks fail on arrays, see STACK.md).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.pii import first_card, first_email
from etl.split import SPLITS
from expectations import load_suite

logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    evaluated: int
    unexpected: int
    failed_expectations: list[str] = field(default_factory=list)
    result_path: str | None = None


class ValidationFailed(RuntimeError):
    """A table did not pass its expectation suite."""

    def __init__(self, result: SuiteResult, etl_result=None):
        self.result = result
        self.etl_result = etl_result  # what the ETL did before the gate closed, for the report
        super().__init__(
            f"table {result.suite!r} failed validation: {', '.join(result.failed_expectations)}"
            + (f" (details: {result.result_path})" if result.result_path else "")
        )


def preload() -> None:
    """Import Great Expectations (about 3.5 s) in a background thread, while Spark reads input."""
    threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()


def with_derived_columns(df: DataFrame) -> DataFrame:
    """Scalar columns that stand for checks GX cannot express directly or quickly: token id bounds
    (GX fails on array columns), split shares (as 0/1 means), Luhn-valid card numbers and e-mail
    addresses left in text."""
    if "split" in df.columns:
        for split in SPLITS:
            df = df.withColumn(f"is_{split}", (F.col("split") == split).cast("double"))
    if "text" in df.columns:
        df = df.withColumn("raw_card_number", first_card(F.col("text"))).withColumn(
            "raw_email", first_email(F.col("text"))
        )
    if "input_ids" in df.columns:
        df = df.withColumn("min_token_id", F.array_min("input_ids")).withColumn(
            "max_token_id", F.array_max("input_ids")
        )
    return df


def check_frame(df: DataFrame, expectations: list[dict]) -> DataFrame:
    """What the suite reads, computed in one Spark pass and cached: the columns its expectations
    name (those ``df`` has; a missing one is the suite's to report) and the derived ones. GX then
    runs each metric over this narrow cached frame instead of recomputing ``df`` (and the derived
    columns' regular expressions) per metric; one task per core slot keeps each GX job cheap."""
    named = set()
    for config in expectations:
        kwargs = config["kwargs"]
        named.update(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
        named.update(c for k in ("column_list", "column_set") for c in kwargs.get(k) or [])
    derived = with_derived_columns(df)
    frame = derived.select(*[c for c in derived.columns if c in named])
    slots = df.sparkSession.sparkContext.defaultParallelism
    return (frame if df.rdd.getNumPartitions() <= slots else frame.coalesce(slots)).persist(
        StorageLevel.MEMORY_AND_DISK
    )


def split_bounds(fractions: tuple[float, float, float], rows: int) -> dict[str, float]:
    """Suite parameters ``{split}_min/_max``: each share within 2 points of its configured
    fraction, or within 4 standard errors where a small table makes 2 points too tight."""
    bounds = {}
    for split, p in zip(SPLITS, fractions, strict=True):
        tolerance = max(0.02, 4 * (p * (1 - p) / max(rows, 1)) ** 0.5)
        bounds[f"{split}_min"], bounds[f"{split}_max"] = max(0.0, p - tolerance), min(1.0, p + tolerance)
    return bounds


def expectation_name(config: dict) -> str:
    """``expect_x(column)``: how a failed expectation is named in reports and errors."""
    column = config["kwargs"].get("column")
    return f"{config['type']}({column})" if column else config["type"]


def _suite_expectations(name: str, task: str, suite_dir: str | None) -> list[dict]:
    return [e for e in load_suite(name, suite_dir)["expectations"] if task in e.get("meta", {}).get("tasks", [task])]


def _is_strict(config: dict) -> bool:
    """No tolerated unexpected rows (``mostly`` absent or 1)."""
    mostly = config["kwargs"].get("mostly", 1.0)
    return isinstance(mostly, int | float) and mostly >= 1.0


def _context(results_dir: Path | None):
    """A file context under ``results_dir/gx`` (keeps results and builds data docs), else ephemeral."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = (
        gx.get_context(mode="ephemeral")
        if results_dir is None
        else gx.get_context(mode="file", project_root_dir=str(results_dir / "gx"))
    )
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return ctx


def validate_table(
    df: DataFrame,
    suite: str,
    *,
    params: dict,
    task: str = "classification",
    results_dir: str | Path | None = None,
    suite_dir: str | None = None,
    docs: bool = True,
) -> SuiteResult:
    """Run suite ``suite`` (from ``suite_dir`` or the shipped ones) over ``df`` with suite
    parameters ``params``. With ``results_dir``, the GX result is kept there as JSON
    (``SUITE.json``) and in GX data docs (``gx/gx/uncommitted/data_docs/local_site/index.html``),
    rebuilt now unless ``docs`` is false (``build_data_docs`` renders several suites' results at once)."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    out = Path(results_dir) if results_dir is not None else None
    ctx = _context(out)
    source = ctx.data_sources.add_or_update_spark(name="tokenlake", persist=False)
    asset = next((a for a in source.assets if a.name == suite), None) or source.add_dataframe_asset(name=suite)
    batch = next(
        (b for b in asset.batch_definitions if b.name == "whole"), None
    ) or asset.add_batch_definition_whole_dataframe("whole")
    expectations = _suite_expectations(suite, task, suite_dir)
    gx_suite = gx.ExpectationSuite(name=suite)
    for config in expectations:
        gx_suite.add_expectation_configuration(
            ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"], meta=config.get("meta"))
        )
    gx_suite = ctx.suites.add_or_update(gx_suite)
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite, data=batch, suite=gx_suite)
    )
    frame = check_frame(df, expectations)

    def run(result_format: str):
        checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs")] if out is not None and docs else [],
                result_format=result_format,
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=params)
        return next(iter(result.run_results.values()))

    # Unexpected-value lists cost GX a Spark job per expectation; they are only worth it when
    # there is something to show. A strict suite that passes has no unexpected rows.
    strict = all(_is_strict(config) for config in expectations)
    try:
        outcome = run("BOOLEAN_ONLY") if strict else None
        if outcome is None or not outcome.success:
            outcome = run("SUMMARY")
    finally:
        frame.unpersist()
    failed = [expectation_name(r.expectation_config.to_json_dict()) for r in outcome.results if not r.success]
    unexpected = sum(int((r.result or {}).get("unexpected_count") or 0) for r in outcome.results)
    path = None
    if out is not None:
        path = out / f"{suite}.json"
        path.write_text(json.dumps(outcome.to_json_dict(), indent=1, default=str))
    return SuiteResult(
        suite=suite,
        success=bool(outcome.success),
        evaluated=len(outcome.results),
        unexpected=unexpected,
        failed_expectations=failed,
        result_path=str(path) if path else None,
    )


def build_data_docs(results_dir: str | Path) -> Path:
    """Render every result kept under ``results_dir`` into GX data docs; return the index page."""
    _context(Path(results_dir)).build_data_docs()
    return data_docs_index(results_dir)


def data_docs_index(results_dir: str | Path) -> Path:
    """Where ``validate_table`` builds the GX data docs for a results directory."""
    return Path(results_dir) / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
