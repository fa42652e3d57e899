"""One registry of reject reasons (``etl.reasons``): each is decided somewhere, and the README's
table says exactly what the registry says."""

import re
from pathlib import Path

import pytest

from tokenlake.etl.config import EtlConfig
from tokenlake.etl.context import suite_params
from tokenlake.etl.reasons import REASONS, reason

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (ingest|clean) \| (.+?) \|$", readme, flags=re.M)
    assert rows == [(r.name, r.stage, r.meaning) for r in REASONS]


def test_every_reason_is_decided_by_a_stage_and_allowed_by_the_quarantine_suite():
    code = "".join(p.read_text() for p in (ROOT / "etl").glob("*.py") if p.name != "reasons.py")
    unused = [r.name for r in REASONS if f'reason("{r.name}")' not in code]
    assert not unused, f"registered but never decided: {unused}"
    assert suite_params("quarantine", EtlConfig())["reject_reasons"] == [r.name for r in REASONS]
    with pytest.raises(KeyError, match="not a reject reason"):
        reason("malformed_jsn")
