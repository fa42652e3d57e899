import json

from etl.generate import CLASSES, FILLER, generate_corpus


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
    own_only = 0
    for r in rows:
        words = r["text"].lower().replace(".", "").replace(",", "").split()
        others = set().union(*(set(w) for k, w in CLASSES.items() if k != r["label"])) - set(CLASSES[r["label"]])
        # every document carries words of its own class; another class's words only right after "not"
        assert set(words) & set(CLASSES[r["label"]])
        assert all(i > 0 and words[i - 1] == "not" for i, w in enumerate(words) if w in others)
        own_only += not set(words) & others
    assert 25 <= own_only <= 49  # the default contrast share is a quarter


def test_contrast_sentences_name_one_topic_and_negate_the_other(tmp_path):
    """So a contrast document's bag of words is as likely to come from its mirror image."""
    import random

    from etl.generate import make_contrast_document

    openings = set()
    for seed in range(20):
        first, *rest = make_contrast_document(random.Random(seed), "food", "finance").lower().split(". ")
        words = first.replace(",", "").rstrip(".").split()
        food = [i for i, w in enumerate(words) if w in CLASSES["food"]]
        finance = [i for i, w in enumerate(words) if w in CLASSES["finance"]]
        assert len(food) == len(finance) == 1 and words[finance[0] - 1] == "not"
        openings.add(words.index("not"))
        assert all(w in FILLER for sentence in rest for w in sentence.rstrip(".").split())
    assert openings == {0, 1}  # "Not <finance> but <food>." and "<Food>, not <finance>."
    rows = [json.loads(line) for line in generate_corpus(tmp_path / "all.jsonl", 40, seed=1, contrast=1.0).open()]
    assert all("not" in r["text"].lower().split() for r in rows)
    none = [json.loads(line) for line in generate_corpus(tmp_path / "none.jsonl", 40, seed=1, contrast=0.0).open()]
    assert not any("not" in r["text"].lower().split() for r in none)


def test_zero_docs_writes_empty_file(tmp_path):
    assert generate_corpus(tmp_path / "e.jsonl", 0).read_text() == ""
