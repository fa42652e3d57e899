import json

from etl.generate import CLASSES, generate_corpus


def test_same_seed_same_bytes_and_labelled_rows(tmp_path):
    a = generate_corpus(tmp_path / "a.jsonl", 50, seed=3)
    b = generate_corpus(tmp_path / "b.jsonl", 50, seed=3)
    c = generate_corpus(tmp_path / "c.jsonl", 50, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(rows) == 50
    assert len({r["id"] for r in rows}) == 50
    assert {r["label"] for r in rows} <= set(CLASSES)
    for r in rows:
        words = set(r["text"].lower().replace(".", "").split())
        # every document carries words of its own class and none that belong only to another
        assert words & set(CLASSES[r["label"]])
        others = set().union(*(set(w) for k, w in CLASSES.items() if k != r["label"])) - set(CLASSES[r["label"]])
        assert not words & others


def test_zero_docs_writes_empty_file(tmp_path):
    assert generate_corpus(tmp_path / "e.jsonl", 0).read_text() == ""
