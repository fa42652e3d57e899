"""Great Expectations suites, one JSON file per published table, loaded by name.

The files use GX's own suite format. Values known only at run time (the label set, the
vocabulary size, ``max_len``) are suite parameters: ``{"$PARAMETER": "name"}``.
"""

from __future__ import annotations

import json
from pathlib import Path

SUITE_DIR = Path(__file__).parent


def load_suite(name: str, directory: str | Path | None = None) -> dict:
    """The suite ``name`` (e.g. ``gold``) as a dict: ``{"name", "expectations": [...]}``, from
    ``directory`` if given (a user's own suites), else from the suites shipped here."""
    suite_dir = Path(directory) if directory else SUITE_DIR
    path = suite_dir / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in suite_dir.glob("*.json"))
        raise KeyError(f"no expectation suite {name!r}; known: {known}")
    return json.loads(path.read_text())
