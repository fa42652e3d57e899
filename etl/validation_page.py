"""``WORK/validation/index.html``: every suite's outcome on one self-contained page.

Great Expectations' data docs load their styles, scripts and icons from the internet, so offline
(a locked-down cluster, a laptop on a plane) they render blank. This page has no script and
nothing to fetch: for each suite the table's path, Delta version and rows, and for each
expectation what it expects, the value observed and whether it passed, in words.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from tokenlake.etl.validate import expectation_name

PAGE = "index.html"
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em; color: #111; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 2em; }
th, td { border: 1px solid #999; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #e8e8e8; }
.passed { color: #0b5d1e; font-weight: bold; }
.failed { color: #a50e0e; font-weight: bold; }
code { font-size: 13px; }
"""


def expected(kwargs: dict) -> str:
    """What an expectation asks for, in words (``between 0.7 and 0.9``, ``at most 0``, ``StringType``)."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    if high is not None:
        return f"at most {high:g}"
    if low is not None:
        return f"at least {low:g}"
    for key in ("type_", "column_set", "value_set"):
        if key in kwargs:
            return kwargs[key] if isinstance(kwargs[key], str) else json.dumps(kwargs[key])
    return ""


def rows_of(result: dict) -> list[dict]:
    """Each expectation of a suite result (``SUITE.json``): name, expected, observed, passed, why."""
    metrics = result.get("metrics", {})
    rows = []
    for outcome in result.get("results", []):
        for r in outcome["results"]:
            config = r["expectation_config"]
            column = config["kwargs"].get("column")
            observed = r["result"].get("observed_value", metrics.get(column))
            rows.append({
                "expectation": expectation_name(config),
                "expected": expected(config["kwargs"]),
                "observed": observed,
                "passed": bool(r["success"]),
                "why": config.get("meta", {}).get("why", ""),
            })  # fmt: skip
    return rows


def _word(passed: bool) -> str:
    return f'<span class="{"passed" if passed else "failed"}">{"passed" if passed else "FAILED"}</span>'


def write_page(results_dir: Path, suites: list[str], tables: dict) -> Path:
    """Render the results of ``suites`` (``results_dir/SUITE.json``, as ``validate_table`` keeps
    them); ``tables`` gives each one's table ``path`` and ``version`` (as the report holds them).
    Returns the page's path."""
    parts = [f"<h1>tokenlake validation</h1><p>Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>"]
    for suite in suites:
        result = json.loads((results_dir / f"{suite}.json").read_text())
        table = tables.get(suite) or {}
        version = table.get("version")
        parts.append(
            f'<h2 id="{escape(suite)}">{escape(suite)}: {_word(result["success"])}</h2>'
            f"<p>table <code>{escape(str(table.get('path', 'not published')))}</code>, Delta version "
            f"{escape(str(version)) if version is not None else 'none (not published)'}, "
            f"{escape(str(result.get('metrics', {}).get('rows', 'unknown')))} rows</p>"
            "<table><tr><th>expectation</th><th>expected</th><th>observed</th><th>result</th><th>why</th></tr>"
        )
        for row in rows_of(result):
            observed = row["observed"] if isinstance(row["observed"], str) else json.dumps(row["observed"])
            parts.append(
                f"<tr><td><code>{escape(row['expectation'])}</code></td><td>{escape(row['expected'])}</td>"
                f"<td>{escape(str(observed))}</td><td>{_word(row['passed'])}</td><td>{escape(row['why'])}</td></tr>"
            )
        parts.append("</table>")
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tokenlake validation</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    page = results_dir / PAGE
    page.write_text(html)
    return page
