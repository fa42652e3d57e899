"""Expectation suites, one JSON file per published table, loaded by name.

Each file holds ``schema`` (GX expectations on the table's columns and types), ``metrics`` (named
Spark SQL figures over the table: ``{"rows_where": predicate}``, ``{"repeated": column}`` or
``{"aggregate": expression}``) and ``expectations`` (GX expectations over those metrics, one
column per metric); ``etl.validate`` runs them. Values known only at run time (the label set,
the vocabulary size, ``max_len``, and the split shares' bounds, which follow from the table's row
count) are suite parameters: ``{"$PARAMETER": "name"}`` in GX kwargs, ``:name`` in SQL. Every
suite also counts its table's ``rows`` (a reserved metric name).
"""

from __future__ import annotations

import json
from pathlib import Path

SUITE_DIR = Path(__file__).parent


def load_suite(name: str, directory: str | Path | None = None) -> dict:
    """The suite ``name`` (e.g. ``gold``) as a dict: ``{"name", "schema", "metrics", "expectations"}``, from
    ``directory`` if it holds one (a user's own suites), else the one shipped here."""
    candidates = [Path(directory) / f"{name}.json"] if directory else []
    path = next((p for p in candidates + [SUITE_DIR / f"{name}.json"] if p.is_file()), None)
    if path is None:
        known = sorted(p.stem for p in SUITE_DIR.glob("*.json"))
        raise KeyError(f"no expectation suite {name!r}; known: {known}")
    return json.loads(path.read_text())
