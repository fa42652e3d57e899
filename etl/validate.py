"""Great Expectations gate: a table version that fails its suite is never published or trained on.

A suite (``expectations/TABLE.json``) has three parts. ``schema``: GX expectations over the
table's columns and types, which GX answers from the Spark frame's schema without a Spark job.
``metrics``: the figures the row checks need, computed in one Spark pass over the table
(``etl.metrics``). ``expectations``: GX expectations over that one-row frame of
metrics, which decide. GX's Spark engine would instead run several jobs per suite (a window
shuffle per uniqueness check, an aggregation per domain) and cost more than tokenizing the table.

Appending rows to a published table (``stored=``) costs what the append costs wherever a check
allows it: each metric's ``scope`` (``etl.metrics``) says whether the new rows decide it (with the
stored keys for a repeated count) or the whole table does (a share of rows).

``validate_table`` writes the result under the results directory (``SUITE.json``: GX's results,
the metrics, and a few example rows for each failed count) and returns a compact summary.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame

from tokenlake.etl.config import Task
from tokenlake.etl.metrics import compute_metrics, examples
from tokenlake.expectations import load_suite

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


def preload(results_dir: str | Path) -> Future:
    """Import Great Expectations (about 3.5 s) and open the GX context that keeps results under
    ``results_dir`` in a background thread, while Spark reads the input: a future of the context."""
    future: Future = Future()

    def load() -> None:
        try:
            future.set_result(gx_context(Path(results_dir)))
        except BaseException as exc:  # handed to whoever waits on the context
            future.set_exception(exc)

    threading.Thread(target=load, daemon=True).start()
    return future


def expectation_name(config: dict) -> str:
    """``expect_x(column)``: how a failed expectation is named in reports and errors."""
    column = config["kwargs"].get("column")
    return f"{config['type']}({column})" if column else config["type"]


def _check_suite(suite: str, spec: dict) -> None:
    """A suite whose expectations name a metric it does not define (or a metric of no known kind)
    is an error, not a pass on a missing figure."""
    for name, metric in spec["metrics"].items():
        if name == "rows":
            raise ValueError(f"suite {suite!r}: metric 'rows' is reserved (every suite counts its table's rows)")
        if len(set(metric) & {"rows_where", "repeated", "aggregate"}) != 1:
            raise ValueError(f"suite {suite!r}: metric {name!r} needs one of rows_where, repeated, aggregate")
        if metric.get("scope", "rows") not in ("rows", "table"):
            raise ValueError(f"suite {suite!r}: metric {name!r} has scope {metric['scope']!r}, not rows or table")
    for config in spec["expectations"]:
        if config["kwargs"].get("column") not in spec["metrics"]:
            raise ValueError(f"suite {suite!r}: {expectation_name(config)} names no metric of the suite")


def _for_task(expectations: list[dict], task: str) -> list[dict]:
    return [e for e in expectations if task in e.get("meta", {}).get("tasks", [task])]


def gx_context(results_dir: Path | None):
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


def _run_suite(ctx, name: str, expectations: list[dict], source, frame, params: dict):
    """Run GX expectations ``expectations`` as suite ``name`` over ``frame`` (a whole-frame batch of
    ``source``); GX's validation result."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    asset = next((a for a in source.assets if a.name == name), None) or source.add_dataframe_asset(name=name)
    batch = next(
        (b for b in asset.batch_definitions if b.name == "whole"), None
    ) or asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=name)
    for config in expectations:
        suite.add_expectation_configuration(
            ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"], meta=config.get("meta"))
        )
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=ctx.suites.add_or_update(suite))
    )
    # run (and stored for the data docs) by the definition itself: a checkpoint around it would
    # only add its own configuration to write and check on every run
    return definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format="SUMMARY")


_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # GX context -> {name: data source}


def _gx_data_source(ctx, kind: str, name: str):
    """GX data source ``name`` of ``kind`` (spark, pandas), added to (or updated in) ``ctx`` once
    per context object: each call to add one rewrites the context's configuration file. (Getting
    one that an earlier process saved is no shortcut: its in-memory assets come back unusable.)"""
    sources = _SOURCES.setdefault(ctx, {})
    if name not in sources:
        sources[name] = getattr(ctx.data_sources, f"add_or_update_{kind}")(name=name)
    return sources[name]


def validate_table(
    df: DataFrame,
    suite: str,
    *,
    params: dict,
    row_params: Callable[[int], dict] | None = None,
    task: str = Task.CLASSIFICATION.value,
    results_dir: str | Path | None = None,
    suite_dir: str | None = None,
    docs: bool = True,
    context=None,
    stored: DataFrame | None = None,
) -> SuiteResult:
    """Run suite ``suite`` (from ``suite_dir`` or the shipped ones) over ``df`` with suite
    parameters ``params``, and those ``row_params`` gives for the table's row count (which the
    metrics pass counts): its schema expectations first (a table without the columns the metrics
    name fails there), then its expectations over the metrics. With ``results_dir``, the result is
    kept there as JSON (``SUITE.json``) and in GX data docs (``data_docs_index``), rebuilt now
    unless ``docs`` is false (``build_data_docs`` renders several suites' results at once).
    ``context``: the GX context of ``results_dir`` if the caller opened it already (``preload``).
    ``stored``: ``df`` is only the rows to be appended to this published table (``compute_metrics``)."""
    spec = load_suite(suite, suite_dir)
    _check_suite(suite, spec)
    out = Path(results_dir) if results_dir is not None else None
    ctx = context if context is not None else gx_context(out)
    schema_checks, checks = _for_task(spec.get("schema", []), task), _for_task(spec["expectations"], task)
    tables = _gx_data_source(ctx, "spark", "tables")
    outcomes = [_run_suite(ctx, f"{suite}_schema", schema_checks, tables, df, params)]
    metrics = {}
    if outcomes[0].success:
        used = {c["kwargs"]["column"]: spec["metrics"][c["kwargs"]["column"]] for c in checks}
        metrics = compute_metrics(df, used, params, stored=stored)
        judged = {**params, **(row_params(metrics["rows"]) if row_params else {})}
        metric_rows = _gx_data_source(ctx, "pandas", "metrics")
        outcomes.append(_run_suite(ctx, suite, checks, metric_rows, pd.DataFrame([metrics]), judged))
    success = all(o.success for o in outcomes)
    failed = [r.expectation_config.to_json_dict() for o in outcomes for r in o.results if not r.success]
    # failed counts of rows (or of repeated values), as opposed to aggregates such as shares
    counted = [
        n for n in (c["kwargs"].get("column") for c in failed) if n in metrics and "aggregate" not in spec["metrics"][n]
    ]
    whole = df if stored is None else stored.unionByName(df, allowMissingColumns=True)
    shown = {n: examples(whole, spec["metrics"][n], params) for n in counted}
    path = None
    if out is not None:
        path = out / f"{suite}.json"
        details = {
            "suite": suite,
            "success": success,
            "metrics": metrics,
            "examples": shown,
            "results": [o.to_json_dict() for o in outcomes],
        }
        path.write_text(json.dumps(details, indent=1, default=str))
        if docs:
            build_data_docs(out, ctx)
    return SuiteResult(
        suite=suite,
        success=success,
        evaluated=sum(len(o.results) for o in outcomes),
        unexpected=sum(int(metrics.get(n) or 0) for n in counted),
        failed_expectations=[expectation_name(c) for c in failed],
        result_path=str(path) if path else None,
    )


def build_data_docs(results_dir: str | Path, context=None) -> Path:
    """Render every result kept under ``results_dir`` (by ``context``, its GX context, if given)
    into GX data docs; return the index page."""
    (context if context is not None else gx_context(Path(results_dir))).build_data_docs()
    return data_docs_index(results_dir)


def data_docs_index(results_dir: str | Path) -> Path:
    """Where ``validate_table`` builds the GX data docs for a results directory."""
    return Path(results_dir) / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
