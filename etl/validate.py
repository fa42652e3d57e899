"""Great Expectations gate: a table version that fails its suite is never published or trained on.

A suite (``expectations/TABLE.json``) has three parts. ``schema``: GX expectations over the
table's columns and types, which GX answers from the Spark frame's schema without a Spark job.
``metrics``: the figures the row checks need, each a count of rows matching a predicate
(``rows_where``), a count of values repeated beyond their first occurrence (``repeated``, over
the values' hashes first: ``REPEATED_KEY``) or any Spark SQL aggregate (``aggregate``), all
computed, with the table's ``rows``, in one Spark pass over the table (suite parameters appear as
``:name``). ``expectations``: GX expectations over that one-row frame of
metrics, which decide. GX's Spark engine would instead run several jobs per suite (a window
shuffle per uniqueness check, an aggregation per domain) and cost more than tokenizing the table.

Appending rows to a published table (``stored=``) costs what the append costs wherever a check
allows it: each metric's ``scope`` says whether the new rows decide it (with the stored keys for a
repeated count) or the whole table does (a share of rows).

``validate_table`` writes the result under the results directory (``SUITE.json``: GX's results,
the metrics, and a few example rows for each failed count) and returns a compact summary.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.config import Task
from tokenlake.etl.pii import first_card, first_email
from tokenlake.etl.split import SPLITS
from tokenlake.expectations import load_suite

logging.getLogger("great_expectations").setLevel(logging.ERROR)

EXAMPLES = 5  # rows kept per failed count, to show what broke the rule
EXAMPLE_CHARS = 200


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


DERIVED = {"raw_card_number": first_card, "raw_email": first_email}


def with_derived_columns(df: DataFrame, sql: list[str]) -> DataFrame:
    """``df`` with the columns that ``sql`` names among those SQL cannot spell (``DERIVED``): the
    first Luhn-valid card number and the first e-mail address left in ``text`` (null when none).
    Only the named ones are built: each costs many calls into the JVM."""
    named = {n for n in DERIVED if "text" in df.columns and any(re.search(rf"\b{n}\b", text) for text in sql)}
    return df.withColumns({n: DERIVED[n](F.col("text")) for n in named})


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


# what a ``repeated`` count compares first: a 64-bit hash of each value (a long key is far cheaper
# to aggregate and shuffle than a string). Equal values hash alike, so no repeated hash means no
# repeated value; a repeated hash may be a collision, so such counts are redone over the values.
REPEATED_KEY = "xxhash64({})"


def metric_sql(spec: dict, *, exact: bool = False) -> str:
    """The Spark SQL aggregate that computes one metric of a suite; a ``repeated`` count over the
    values' hashes (an upper bound: it may count a collision) unless ``exact``."""
    if "rows_where" in spec:
        return f"count_if({spec['rows_where']})"
    if "repeated" in spec:
        column = spec["repeated"]
        key = column if exact else f"IF({column} IS NULL, NULL, {REPEATED_KEY.format(column)})"
        return f"count({column}) - count(DISTINCT {key})"
    return spec["aggregate"]


# a quoted string or identifier (kept as it is), or a parameter :name (not the cast in x::int)
PARAMETER = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|(?<![:\w]):([A-Za-z_]\w*)""")


def _bind(df: DataFrame, sql: list[str], params: dict) -> tuple[DataFrame, list[str]]:
    """``df`` with its derived columns and, as constant columns, the suite parameters that ``sql``
    names; and ``sql`` with each ``:name`` outside quoted strings made a reference to its column.
    (Spark SQL's own parameter binding needs ``spark.sql`` over a temporary view, and dropping that
    view throws away a cache of the same table, which the pipeline still needs.)"""
    used = set()

    def column(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in params:
            raise ValueError(f"suite parameter {name!r} is not set (known: {sorted(params)})")
        used.add(name)
        return f"`__param_{name}`"

    bound = [PARAMETER.sub(column, text) for text in sql]
    return with_derived_columns(df, bound).withColumns({f"__param_{n}": F.lit(params[n]) for n in used}), bound


def scope(spec: dict) -> str:
    """Where a metric is computed when rows are appended to a published table: ``rows`` (the new
    rows decide: a count of rows breaking a rule, a bound on each row; ``repeated`` counts also
    look up the new keys among the stored ones) or ``table`` (the whole table, e.g. a share). A
    suite says ``"scope"``; an ``aggregate`` that does not is taken as ``table``."""
    return spec.get("scope", "table" if "aggregate" in spec else "rows")


def compute_metrics(df: DataFrame, metrics: dict[str, dict], params: dict, *, stored: DataFrame | None = None) -> dict:
    """Every metric, and the table's ``rows``, from one Spark query over the table (the
    ``repeated`` counts share its shuffle); a second query only where a repeated count is not 0.

    ``stored``: ``df`` holds only the rows to be appended to ``stored`` (a published table, which
    passed this suite). Metrics of scope ``rows`` are then computed over ``df`` (a repeated count
    adds the new values that ``stored`` holds, looked up by their hashes first), those of scope
    ``table`` over both, reading only the columns they name; ``rows`` counts both."""

    def query(frame: DataFrame, specs: dict[str, dict], exact: bool) -> dict:
        table, sql = _bind(frame, [metric_sql(spec, exact=exact) for spec in specs.values()], params)
        columns = [F.expr(text).alias(name) for name, text in zip(specs, sql, strict=True)]
        return table.agg(F.count(F.lit(1)).alias("rows"), *columns).first().asDict()

    if stored is None:
        values = query(df, metrics, exact=False)
    else:
        whole = {n: spec for n, spec in metrics.items() if scope(spec) == "table"}
        values = query(df, {n: spec for n, spec in metrics.items() if n not in whole}, exact=False)
        repeated = {n: spec["repeated"] for n, spec in metrics.items() if "repeated" in spec and n not in whole}
        hits = {n: f"__stored_{n}" for n in repeated}
        # one more query, over the whole table: the table-scope metrics, the rows, and for each
        # repeated count how many new values the stored rows hold (by hash)
        stored_side = stored
        for name, column in repeated.items():
            counts = _keys(df, column).groupBy("_value").agg(F.count(F.lit(1)).alias(hits[name]))
            small = values["rows"] <= BROADCAST_ROWS  # the new rows: sent to every task, the lake only scanned
            stored_side = with_derived_columns(stored_side, [column])
            stored_side = stored_side.withColumn("_value", _key(stored_side, column)).join(
                F.broadcast(counts) if small else counts, "_value", "left"
            )
        both = stored_side.drop("_value").unionByName(df, allowMissingColumns=True)
        extra = {hits[n]: {"aggregate": f"coalesce(sum({hits[n]}), 0)"} for n in repeated}
        table = query(both, {**whole, **extra}, exact=False)
        values.update({n: table[n] for n in ("rows", *whole)})
        for name in repeated:
            values[name] += table[hits[name]]
    suspect = {n: spec for n, spec in metrics.items() if "repeated" in spec and values[n]}
    if suspect:  # repeated hashes: count the values themselves, so that a collision fails nothing
        exact = query(df, suspect, exact=True)
        for name, spec in suspect.items():
            extra = 0 if stored is None else _stored_repeats(df, stored, spec["repeated"])
            values[name] = exact[name] + extra
    return values


BROADCAST_ROWS = 2_000_000
"""Appends of up to this many rows look their keys up in the stored table without shuffling it."""


def _key(df: DataFrame, column: str, *, exact: bool = False) -> Column:
    """What a ``repeated`` count compares for ``column`` of ``df``: its hash (or, ``exact``, the value)."""
    value = F.expr(column)
    return value if exact else F.when(value.isNotNull(), F.expr(REPEATED_KEY.format(column)))


def _keys(df: DataFrame, column: str, *, exact: bool = False) -> DataFrame:
    """``_value``: the non-null keys of ``column`` in ``df``, one row per row."""
    keyed = with_derived_columns(df, [column])
    return keyed.select(_key(keyed, column, exact=exact).alias("_value")).where("_value IS NOT NULL")


def _stored_repeats(new: DataFrame, stored: DataFrame, column: str) -> int:
    """How many non-null values of ``new`` (counted with their repeats) ``stored`` holds too,
    compared by value: what they add to the table's repeated count (the exact recount)."""
    counts = _keys(new, column, exact=True).groupBy("_value").count()
    held = _keys(stored, column, exact=True).join(counts, "_value", "left_semi").distinct()
    return int(counts.join(held, "_value").agg(F.coalesce(F.sum("count"), F.lit(0))).first()[0])


def examples(df: DataFrame, spec: dict, params: dict) -> list[dict]:
    """A few rows (or repeated values) behind a failed count: the columns its rule names, and ``id``."""
    if "repeated" in spec:
        column = spec["repeated"]
        repeated = with_derived_columns(df, [column]).where(F.col(column).isNotNull()).groupBy(column).count()
        rows = repeated.where("count > 1").withColumnRenamed("count", "rows").limit(EXAMPLES).collect()
    else:
        table, (where,) = _bind(df, [spec["rows_where"]], params)
        named = set(re.findall(r"[A-Za-z_]\w*", spec["rows_where"]))
        shown = [c for c in table.columns if c in named or c == "id"]
        rows = table.where(F.expr(where)).select(*shown).limit(EXAMPLES).collect()
    return [{k: (v[:EXAMPLE_CHARS] if isinstance(v, str) else v) for k, v in r.asDict().items()} for r in rows]


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
