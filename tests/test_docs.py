"""The guarantees page names tests that exist: no line there that no test backs."""

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_guarantees_name_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    named = re.findall(r"`(?:tests/)?(test_\w+\.py)(?:::(test_[\w*\[\]]+))?`", text)
    assert len(named) > 20
    for module, test in named:
        path = ROOT / "tests" / module
        assert path.is_file(), module
        if test:
            defined = re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M)
            assert fnmatch.filter(defined, test.split("[")[0]), f"{module}::{test} is not a test"
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Guarantee")]
    for row in rows:  # each guarantee names at least one test (or the benchmark that scores it)
        assert "test_" in row.rsplit("|", 2)[-2] or "benchmarks." in row, row[:80]
