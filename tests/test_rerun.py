"""Re-runs are safe: the same input twice adds nothing, an appended file adds exactly its new
rows, and no stored document changes split."""

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tokenlake.etl.config import EtlConfig
from tokenlake.etl.lake import read_table
from tokenlake.etl.pipeline import run_etl
from tokenlake.jobs.gold_trust import usable_gold
from tokenlake.synthetic.documents import CLASSES, make_document

LABELS = sorted(CLASSES)
CFG = EtlConfig(vocab_size=300, min_files=1)


def _docs(prefix: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"id": f"{prefix}-{i:04d}", "text": make_document(rng, LABELS[i % 4]), "label": LABELS[i % 4]} for i in range(n)
    ]


def _write(path: Path, records: list, extra: bytes = b"") -> None:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + extra)


def _near(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "zzyzx"  # one word of 16+ changed: set Jaccard >= 0.88
    return " ".join(words)


def _splits(spark, result) -> dict[str, str]:
    t = result.tables["silver"]
    return {r["id"]: r["split"] for r in read_table(spark, t["path"], t["version"]).select("id", "split").collect()}


def _counts(spark, result) -> dict[str, int]:
    return {n: read_table(spark, t["path"], t["version"]).count() for n, t in result.tables.items()}


def test_same_input_twice_adds_nothing_and_a_new_file_adds_its_new_rows(spark, tmp_path):
    corpus, work = tmp_path / "in", tmp_path / "work"
    corpus.mkdir()
    first = _docs("a", 120, seed=1)
    dup = {"id": "a-dup", "text": first[0]["text"], "label": first[0]["label"]}
    near = {"id": "a-near", "text": _near(first[1]["text"]), "label": first[1]["label"]}
    _write(corpus / "a.jsonl", [*first, dup, near], b'{"id": "bad", "text": 1}\n')

    one = run_etl(spark, str(corpus), work, CFG)
    expected = {"read": 123, "clean": 120, "new": 120, "quarantined": 1, "duplicates_exact": 1, "duplicates_near": 1}
    assert {k: one.rows[k] for k in expected} == expected
    assert _counts(spark, one) == {"bronze": 122, "quarantine": 1, "silver": 120, "gold": 120}
    assert _work(one) == ("rebuild", 121, 120)  # signed: every row past exact de-duplication

    two = run_etl(spark, str(corpus), work, CFG)  # the same input again
    assert {k: two.rows[k] for k in expected} == {**expected, "new": 0}
    assert _counts(spark, two) == _counts(spark, one)
    assert _splits(spark, two) == _splits(spark, one)
    assert _work(two) == ("append", 1, 0)  # only a-near is new to silver (and a near-duplicate again)
    assert two.tables["gold"]["version"] == one.tables["gold"]["version"]  # nothing new: no commit

    second = _docs("b", 30, seed=2)
    again = {"id": "b-dup", "text": first[5]["text"], "label": first[5]["label"]}  # stored content, new id
    near_old = {"id": "b-near", "text": _near(first[6]["text"]), "label": first[6]["label"]}  # near a stored doc
    changed = {"id": "a-0007", "text": "a changed text under a stored id " * 3, "label": "food"}
    _write(corpus / "b.jsonl", [*second, again, near_old, changed], b"not json\n")
    three = run_etl(spark, str(corpus), work, CFG)
    assert three.rows["new"] == 30
    assert three.rows["clean"] == 150 and three.rows["read"] == 123 + 34
    assert (three.rows["duplicates_exact"], three.rows["duplicates_near"]) == (2, 2)
    assert three.reject_reasons == {"text_not_string": 1, "malformed_json": 1, "duplicate_id": 1}
    splits = _splits(spark, three)
    assert {i: splits[i] for i in _splits(spark, one)} == _splits(spark, one)  # nothing moved
    assert _counts(spark, three) == {"bronze": 122 + 32, "quarantine": 3, "silver": 150, "gold": 150}
    # signed: the appended file's 30 new rows, its near copy and a-near again; tokenized: the 30
    assert _work(three) == ("append", 32, 30)
    assert three.tokenizer_fingerprint == one.tokenizer_fingerprint  # kept, not trained again
    gold, _ = usable_gold(spark, work, None)  # the combined digest is the table's
    assert gold["digest"] == three.tables["gold"]["digest"] and gold["digest"].startswith("150:")
    gold_ids = read_table(spark, gold["path"], gold["version"]).select("id").distinct().count()
    assert gold_ids == 150

    four = run_etl(spark, str(corpus / "b.jsonl"), work, replace(CFG, rebuild_gold=True))  # the new file, again
    assert four.rows["new"] == 0 and _counts(spark, four) == _counts(spark, three)
    r = four.rows
    assert r["read"] == r["clean"] + r["quarantined"] + r["duplicates_exact"] + r["duplicates_near"]
    assert _work(four) == ("rebuild", 1, 150)  # b-near, a near copy again
    assert four.tables["gold"]["mode_reason"] == "rebuild_gold asked for"


def _work(result) -> tuple[str, int, int]:
    """Gold's mode, and how many documents this run signed (MinHash) and tokenized."""
    return (
        result.tables["gold"]["mode"],
        result.tables["silver"]["rows_signed"],
        result.tables["gold"]["rows_tokenized"],
    )


def test_gold_is_rebuilt_when_the_tokenizer_settings_or_max_len_change(spark, tmp_path):
    corpus, work = tmp_path / "a.jsonl", tmp_path / "work"
    _write(corpus, _docs("a", 40, seed=3))
    run_etl(spark, str(corpus), work, CFG)
    _write(tmp_path / "b.jsonl", _docs("b", 10, seed=4))
    longer = run_etl(spark, str(tmp_path / "b.jsonl"), work, replace(CFG, max_len=64))
    assert _work(longer) == ("rebuild", 10, 50) and longer.tables["gold"]["mode_reason"] == "max_len changed"
    assert read_table(spark, longer.tables["gold"]["path"]).count() == 50


def test_a_table_from_an_older_layout_is_a_clear_error(spark, tmp_path):
    from tokenlake.etl.pipeline import StoredTableMismatch

    old = spark.createDataFrame(
        [("x", "malformed_json", "ingest", "f", "{")],
        "id string, reject_reason string, stage string, source_file string, raw string",
    )
    old.write.format("delta").save(str(tmp_path / "work" / "lake" / "quarantine"))
    _write(tmp_path / "a.jsonl", _docs("a", 3, seed=1))
    with pytest.raises(StoredTableMismatch, match=r"older tokenlake \(no reject_id column"):
        run_etl(spark, str(tmp_path / "a.jsonl"), tmp_path / "work", CFG)


def test_causal_lm_gold_appends_new_blocks_under_ids_of_their_own(spark, tmp_path):
    cfg = replace(CFG, task="causal-lm", max_len=32)
    _write(tmp_path / "a.jsonl", _docs("a", 40, seed=5))
    one = run_etl(spark, str(tmp_path / "a.jsonl"), tmp_path / "work", cfg)
    _write(tmp_path / "b.jsonl", _docs("b", 12, seed=6))
    two = run_etl(spark, str(tmp_path / "b.jsonl"), tmp_path / "work", cfg)
    assert _work(two) == ("append", 12, 12)
    gold = read_table(spark, two.tables["gold"]["path"], two.tables["gold"]["version"])
    blocks = one.packing["blocks"] + two.packing["blocks"]
    assert gold.count() == gold.select("id").distinct().count() == blocks
    assert gold.where(F.col("id").startswith(f"s{two.tables['silver']['version']}-")).count() == two.packing["blocks"]


def test_gold_takes_in_the_silver_rows_of_a_run_that_stopped_before_gold(spark, tmp_path, monkeypatch):
    """A run that published silver but not gold (killed in between): the next run's gold append
    takes in those rows as well as its own, found by id against the silver version gold last took in."""
    import tokenlake.etl.pipeline as pipeline

    work = tmp_path / "work"
    _write(tmp_path / "a.jsonl", _docs("a", 40, seed=7))
    run_etl(spark, str(tmp_path / "a.jsonl"), work, CFG)
    _write(tmp_path / "b.jsonl", _docs("b", 10, seed=8))
    with monkeypatch.context() as m:
        m.setattr(pipeline, "build_gold", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            run_etl(spark, str(tmp_path / "b.jsonl"), work, CFG)
    _write(tmp_path / "c.jsonl", _docs("c", 6, seed=9))
    three = run_etl(spark, str(tmp_path / "c.jsonl"), work, CFG)
    assert _work(three) == ("append", 6, 16)  # signed: its own 6; tokenized: b's 10 and its 6
    gold = read_table(spark, three.tables["gold"]["path"], three.tables["gold"]["version"])
    assert gold.count() == gold.select("id").distinct().count() == _counts(spark, three)["silver"] == 56
