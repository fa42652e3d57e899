import difflib
import html
import itertools
import json
import random
import re
import unicodedata
from collections import Counter

import pytest

from tokenlake.etl.ingest import BAD_LABEL_TYPE, MALFORMED_JSON, MISSING_LABEL, MISSING_TEXT, TEXT_NOT_STRING
from tokenlake.etl.sources import INVALID_UTF8
from tokenlake.synthetic.dirt import BAD_KINDS, jaccard, word_set
from tokenlake.synthetic.documents import CLASSES, CLASSES_ES, FILLER, LANGUAGES
from tokenlake.synthetic.generate import generate_corpus, truth_path

NEUTRAL = set(FILLER) | set(LANGUAGES["en"].pseudo)


def test_same_seed_same_bytes_and_labelled_rows(tmp_path):
    a = generate_corpus(tmp_path / "a.jsonl", 50, seed=3)
    b = generate_corpus(tmp_path / "b.jsonl", 50, seed=3)
    c = generate_corpus(tmp_path / "c.jsonl", 50, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert not truth_path(a).exists()  # a clean corpus has no ground truth file
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
        assert len(words) >= 11 and all(w.isalpha() for w in words)  # no digits, no markup: clean
        own_only += not set(words) & others
    assert 25 <= own_only <= 49  # the default contrast share is a quarter


def test_contrast_sentences_name_one_topic_and_negate_the_other(tmp_path):
    """So a contrast document's bag of words is as likely to come from its mirror image."""
    from tokenlake.synthetic.documents import make_contrast_document

    openings = set()
    for seed in range(20):
        first, *rest = make_contrast_document(random.Random(seed), "food", "finance").lower().split(". ")
        words = first.replace(",", "").rstrip(".").split()
        food = [i for i, w in enumerate(words) if w in CLASSES["food"]]
        finance = [i for i, w in enumerate(words) if w in CLASSES["finance"]]
        assert len(food) == len(finance) == 1 and words[finance[0] - 1] == "not"
        openings.add(words.index("not"))
        assert all(w in NEUTRAL for sentence in rest for w in sentence.rstrip(".").split())
        assert 1 <= len(rest) <= 2
    assert openings == {0, 1}  # "Not <finance> but <food>." and "<Food>, not <finance>."
    rows = [json.loads(line) for line in generate_corpus(tmp_path / "all.jsonl", 40, seed=1, contrast=1.0).open()]
    assert all("not" in r["text"].lower().split() for r in rows)
    none = [json.loads(line) for line in generate_corpus(tmp_path / "none.jsonl", 40, seed=1, contrast=0.0).open()]
    assert not any("not" in r["text"].lower().split() for r in none)


def test_zero_docs_writes_empty_file(tmp_path):
    assert generate_corpus(tmp_path / "e.jsonl", 0).read_text() == ""


def test_clean_documents_are_far_apart_as_word_sets(tmp_path):
    """Near-duplicate detection (Jaccard >= 0.8 on word sets) must find only the planted copies."""
    rows = [json.loads(line) for line in generate_corpus(tmp_path / "c.jsonl", 500, seed=5).open()]
    for words in (word_set, lambda text: set(re.findall(r"\w+", text.lower()))):
        sets = [words(r["text"]) for r in rows]
        assert max(jaccard(a, b) for a, b in itertools.combinations(sets, 2)) < 0.6
    vocab = LANGUAGES["en"].pseudo
    assert len(vocab) == len(set(vocab)) == 4000 and all(w.isalpha() for w in vocab)
    words = Counter(w for r in rows for w in r["text"].lower().replace(".", "").replace(",", "").split())
    assert 0.2 < sum(n for w, n in words.items() if w in set(vocab)) / sum(words.values()) < 0.4


# --- a dirty corpus and its ground truth ---------------------------------------------------------

DIRTY = dict(dup_rate=0.05, near_dup_rate=0.05, pii_rate=0.2, noise_rate=0.3, bad_rate=0.03)


def reference_clean(text: str) -> str:
    """The cleaning the pipeline does, step by step in plain Python."""
    text = re.sub(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>", "", text)
    text = re.sub(r"(?i)</?(?:b|i|em|strong|span|a|u|small|font)\b[^>]*>", "", text)
    text = re.sub(r"<[^>]*>", " ", text)
    text = unicodedata.normalize("NFC", html.unescape(text))
    text = "".join(" " if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text)
    lines = (re.sub(r"[^\S\n]+", " ", line).strip() for line in text.split("\n"))
    boilerplate = re.compile(r"(?i)we use cookies|accept all cookies|javascript is|enable javascript|lorem ipsum")
    return "\n".join(line for line in lines if line and not boilerplate.search(line))


def read_corpus(out, truth=None):
    """(truth record, raw line bytes) for every line of a generated corpus."""
    truth = [json.loads(t) for t in truth_path(out).read_text(encoding="utf-8").splitlines()]
    files = {}
    for t in truth:
        if t["file"] not in files:
            path = out / t["file"] if out.is_dir() else out
            files[t["file"]] = path.read_bytes().split(b"\n")[:-1]
    assert sum(len(lines) for lines in files.values()) == len(truth)
    return [(t, files[t["file"]][t["line"]]) for t in truth]


def ingest_reason(raw: bytes) -> str | None:
    """What ``etl.ingest.parse_records`` says of a line, in plain Python (labels: string or int)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_UTF8
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return MALFORMED_JSON
    if record.get("text") is None:
        return MISSING_TEXT
    if not isinstance(record["text"], str):
        return TEXT_NOT_STRING
    if record.get("label") is None:
        return MISSING_LABEL
    if not isinstance(record["label"], str | int) or isinstance(record["label"], bool):
        return BAD_LABEL_TYPE
    return None


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty") / "corpus"
    generate_corpus(out, 1200, seed=9, files=3, skew=0.8, lang="es", **DIRTY)
    return out, read_corpus(out)


def test_dirty_corpus_same_args_same_bytes(tmp_path, dirty):
    out, _ = dirty
    again = generate_corpus(tmp_path / "corpus", 1200, seed=9, files=3, skew=0.8, lang="es", **DIRTY)
    for name in ("part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert truth_path(again).read_bytes() == truth_path(out).read_bytes()
    assert truth_path(again) == tmp_path / "corpus.truth.jsonl"
    other = generate_corpus(tmp_path / "other", 1200, seed=10, files=3, skew=0.8, lang="es", **DIRTY)
    assert (other / "part-00001.jsonl").read_bytes() != (out / "part-00001.jsonl").read_bytes()


def test_rates_give_exact_numbers_of_each_kind(dirty):
    _, lines = dirty
    kinds = Counter(t["kind"] for t, _ in lines)
    assert kinds == {"clean": 1164, "bad": 36, "duplicate_exact": 60, "duplicate_near": 60}
    assert Counter(t["reason"] for t, _ in lines if t["kind"] == "bad") == {k: 6 for k in BAD_KINDS}
    clean = [t for t, _ in lines if t["kind"] == "clean"]
    assert sum(bool(t["pii"]) for t in clean) == round(0.2 * 1164)
    assert all(1 <= len(t["pii"]) <= 3 and 1 <= len(t["decoys"]) <= 2 for t in clean if t["pii"])
    assert sum(bool(t["decoys"]) and not t["pii"] for t in clean) == round(0.2 * 1164) // 2
    own_text = [t for t, _ in lines if t["kind"] in ("clean", "duplicate_near")]
    assert sum(bool(t["noise"]) for t in own_text) == round(0.3 * len(own_text))
    assert {k for t in own_text for k in t["noise"]} == {"markup", "entity", "control", "boilerplate"}
    assert {p["type"] for t in clean for p in t["pii"]} == {"email", "phone", "card", "ipv4", "ipv6", "iban", "dni"}
    assert {t["label"] for t, _ in lines if t["kind"] != "bad"} == set(CLASSES_ES) == set(CLASSES)
    assert len({t["id"] for t, _ in lines if t["id"]}) == sum(1 for t, _ in lines if t["id"])


def test_every_truth_line_matches_its_corpus_line(dirty):
    _, lines = dirty
    for truth, raw in lines:
        reason = ingest_reason(raw)
        assert reason == truth["reason"], (truth, raw)
        if truth["kind"] == "bad":
            assert truth["clean_text"] is None and truth["pii"] == truth["noise"] == []
            continue
        record = json.loads(raw)
        assert (record["id"], record["label"]) == (truth["id"], truth["label"])
        assert reference_clean(record["text"]) == truth["clean_text"]  # the noise goes, all of it
        assert (record["text"] != truth["clean_text"]) == bool(truth["noise"])
        words = truth["clean_text"].lower().replace(".", "").replace(",", "").split()
        assert "\n" not in truth["clean_text"] and len(words) >= (11 if truth["kind"] == "clean" else 10)
        others = set().union(*(set(w) for k, w in CLASSES_ES.items() if k != truth["label"]))
        assert set(words) & set(CLASSES_ES[truth["label"]])  # PII, decoys and edits keep the signal
        assert all(i > 0 and words[i - 1] == "no" for i, w in enumerate(words) if w in others)
        words = f" {truth['clean_text']} "
        for value in truth["pii"] + truth["decoys"]:  # each one its own word(s)
            assert f" {value['value']} " in words, value


def test_duplicates_copy_clean_originals(dirty):
    _, lines = dirty
    by_id = {t["id"]: (t, raw) for t, raw in lines if t["id"]}
    near = 0
    for truth, raw in lines:
        if not truth["kind"].startswith("duplicate"):
            assert truth["duplicate_of"] is None
            continue
        original, original_raw = by_id[truth["duplicate_of"]]
        assert original["kind"] == "clean" and original["label"] == truth["label"]
        assert [t["id"] for t, _ in lines].index(original["id"]) < [t["id"] for t, _ in lines].index(truth["id"])
        if truth["kind"] == "duplicate_exact":
            assert json.loads(raw)["text"] == json.loads(original_raw)["text"]
            assert truth["clean_text"] == original["clean_text"] and truth["noise"] == original["noise"]
            continue
        a, b = original["clean_text"], truth["clean_text"]
        assert jaccard(word_set(a), word_set(b)) >= 0.8
        ops = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).get_opcodes()
        edited = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
        assert 1 <= edited <= max(2, len(a.split()) // 5)  # a real edit, and a small one
        assert truth["pii"] == original["pii"]
        near += 1
    assert near == 60


def test_bad_lines_have_every_reason_and_never_become_originals(dirty):
    _, lines = dirty
    bad = {t["id"] for t, _ in lines if t["kind"] == "bad" and t["id"]}
    assert len(bad) == 30 and not bad & {t["duplicate_of"] for t, _ in lines}  # malformed lines: no id
    raws = {t["reason"]: raw for t, raw in lines if t["kind"] == "bad"}
    assert set(raws) == {MALFORMED_JSON, INVALID_UTF8, MISSING_TEXT, TEXT_NOT_STRING, BAD_LABEL_TYPE, MISSING_LABEL}
    assert b"\xff\xfe" in raws[INVALID_UTF8]


def test_files_and_skew(dirty, tmp_path):
    _, lines = dirty
    rows = Counter(t["file"] for t, _ in lines)
    assert rows == {"part-00000.jsonl": 1056, "part-00001.jsonl": 132, "part-00002.jsonl": 132}  # 80% of 1320
    lengths = sorted(len(t["clean_text"].split()) for t, _ in lines if t["kind"] == "clean")
    median = lengths[len(lengths) // 2]
    assert lengths[-1] >= 15 * median and median <= 60  # most short, a few 20-50 times longer
    assert sum(n >= 10 * median for n in lengths) <= 20
    even = generate_corpus(tmp_path / "even", 30, files=3, bad_rate=0.1)
    assert [len((even / f"part-0000{i}.jsonl").read_bytes().splitlines()) for i in range(3)] == [10, 10, 10]
    single = generate_corpus(tmp_path / "one.jsonl", 30, pii_rate=0.5)
    assert truth_path(single) == tmp_path / "one.truth.jsonl" and len(read_corpus(single)) == 30


def test_spanish_corpus_keeps_the_labels_and_the_negation(tmp_path):
    rows = [json.loads(line) for line in generate_corpus(tmp_path / "es.jsonl", 200, seed=2, lang="es").open()]
    assert {r["label"] for r in rows} == set(CLASSES)
    for r in rows:
        words = r["text"].lower().replace(".", "").replace(",", "").split()
        others = set().union(*(set(w) for k, w in CLASSES_ES.items() if k != r["label"]))
        assert set(words) & set(CLASSES_ES[r["label"]])
        assert all(i > 0 and words[i - 1] == "no" for i, w in enumerate(words) if w in others)
    assert any("no" in r["text"].lower().split() for r in rows)


def test_bad_arguments_are_refused(tmp_path):
    for kw in ({"pii_rate": 1.5}, {"skew": 1.0}, {"files": 0}, {"lang": "fr"}, {"dup_rate": -0.1}):
        with pytest.raises(ValueError):
            generate_corpus(tmp_path / "x.jsonl", 10, **kw)


def test_cli_generate_flags(tmp_path, capsys):
    from tokenlake.jobs.cli import build_parser, main

    argv = ["generate", "--out", str(tmp_path / "c"), "--docs", "40", "--seed", "3", "--dup-rate", "0.1"]
    argv += ["--near-dup-rate", "0.1", "--pii-rate", "0.2", "--noise-rate", "0.2", "--bad-rate", "0.1"]
    argv += ["--skew", "0.5", "--files", "2", "--lang", "es"]
    args = build_parser().parse_args(argv)
    rates = (args.dup_rate, args.near_dup_rate, args.pii_rate, args.noise_rate, args.bad_rate)
    assert rates == (0.1, 0.1, 0.2, 0.2, 0.1)
    assert (args.skew, args.files, args.lang) == (0.5, 2, "es")
    assert main(argv) == 0
    direct = generate_corpus(tmp_path / "d", 40, 3, dup_rate=0.1, near_dup_rate=0.1, pii_rate=0.2, noise_rate=0.2,
                             bad_rate=0.1, skew=0.5, files=2, lang="es")  # fmt: skip
    assert (tmp_path / "c" / "part-00000.jsonl").read_bytes() == (direct / "part-00000.jsonl").read_bytes()
    assert len(read_corpus(tmp_path / "c")) == 48
    defaults = build_parser().parse_args(["generate", "--out", "x"])
    assert (defaults.dup_rate, defaults.pii_rate, defaults.files, defaults.skew, defaults.lang) == (0, 0, 1, 0, "en")
    assert main(["generate", "--out", str(tmp_path / "y.jsonl"), "--docs", "5", "--pii-rate", "2"]) == 2
    assert "--pii-rate must be in [0, 1]" in capsys.readouterr().err


def test_web_lengths_have_a_long_tail_and_a_mean_over_2_kb(tmp_path):
    path = generate_corpus(tmp_path / "web.jsonl", 3000, seed=4, web_lengths=True)
    sizes = sorted(len(line) for line in path.read_bytes().splitlines())
    assert sum(sizes) / len(sizes) > 2000
    assert sizes[len(sizes) // 2] < 0.75 * sum(sizes) / len(sizes)  # skewed: the median well below the mean
    assert sizes[-1] > 20 * sizes[len(sizes) // 2]
    short = generate_corpus(tmp_path / "short.jsonl", 3000, seed=4)
    assert sum(len(line) for line in short.read_bytes().splitlines()) / 3000 < 500
