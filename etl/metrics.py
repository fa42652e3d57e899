"""The figures a suite's expectations judge, computed in one Spark pass over a table (or, for an
append, over what the append decides): counts of rows matching a predicate (``rows_where``),
counts of values repeated beyond their first occurrence (``repeated``, over 64-bit hashes first:
``REPEATED_KEY``) and any Spark SQL aggregate (``aggregate``), with the table's ``rows``; suite
parameters appear as ``:name``. Also the few rows that show what broke a failed count."""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.config import SPLITS
from tokenlake.etl.pii import first_card, first_email

EXAMPLES = 5  # rows kept per failed count, to show what broke the rule
EXAMPLE_CHARS = 200


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
        # one more query, over the stored rows (with the new ones where a table-scope metric needs
        # the whole table): for each repeated count how many new values the stored rows hold (by
        # hash), the table-scope metrics and the rows; with neither, Delta counts the stored rows
        # from its log
        stored_side = stored
        for name, column in repeated.items():
            counts = _keys(df, column).groupBy("_value").agg(F.count(F.lit(1)).alias(hits[name]))
            small = values["rows"] <= BROADCAST_ROWS  # the new rows: sent to every task, the lake only scanned
            stored_side = with_derived_columns(stored_side, [column])
            stored_side = stored_side.withColumn("_value", _key(stored_side, column)).join(
                F.broadcast(counts) if small else counts, "_value", "left"
            )
        extra = {hits[n]: {"aggregate": f"coalesce(sum({hits[n]}), 0)"} for n in repeated}
        if whole:
            both = stored_side.drop("_value").unionByName(df, allowMissingColumns=True)
            table = query(both, {**whole, **extra}, exact=False)
            values.update({n: table[n] for n in ("rows", *whole)})
        else:
            table = query(stored_side, extra, exact=False) if repeated else {"rows": stored.count()}
            values["rows"] += table["rows"]
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
