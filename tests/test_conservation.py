"""Nothing is lost: random mixes of good and hostile lines (plus an empty and a whitespace-only
file) through the whole ETL, and every line comes out exactly once, as a clean row, a quarantined
row with a reason and its source file, or an exact duplicate."""

import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tokenlake.etl.config import EtlConfig
from tokenlake.etl.lake import read_table
from tokenlake.etl.pipeline import run_etl
from tokenlake.synthetic.documents import CLASSES, make_document

LABELS = sorted(CLASSES)


def _line(kind: str, i: int, rng: random.Random, seen: list[dict]) -> bytes:
    """One physical line of the given kind (without its newline)."""
    doc = {"id": f"h-{i}", "text": make_document(rng, LABELS[i % 4]), "label": LABELS[i % 4]}
    if kind == "duplicate_id" and seen:
        doc["id"] = seen[rng.randrange(len(seen))]["id"]
    elif kind == "duplicate_text" and seen:
        doc["text"] = seen[rng.randrange(len(seen))]["text"]
    hostile = {
        "malformed_json": b'{"id": "x", "text": "unterminated',
        "not_an_object": rng.choice([b"[1, 2]", b"42", b'"text"', b"null"]),
        "blank": rng.choice([b"", b"   ", b"\t"]),
        "invalid_utf8": b'{"id": "u%d", "text": "caf\xe9 \xff", "label": "food"}' % i,
        "nul_bytes": b'{"id": "n%d", "text": "a\x00b", "label": "food"}' % i,
        "missing_text": json.dumps({"id": f"m{i}", "label": "food"}).encode(),
        "text_not_string": json.dumps({"id": f"t{i}", "text": rng.choice([42, [1], {"a": 1}, None, True])}).encode(),
        "bad_label": json.dumps({"id": f"l{i}", "text": "some words", "label": rng.choice([None, 3, [1]])}).encode(),
        "missing_label": json.dumps({"id": f"k{i}", "text": "some words here"}).encode(),
        "bad_id": json.dumps({"id": rng.choice([[1], {"a": 1}, 1.5]), "text": "x y", "label": "food"}).encode(),
        "controls_only": json.dumps({"id": f"c{i}", "text": " \u0007\u0000 ", "label": "food"}).encode(),
    }
    if kind in hostile:
        return hostile[kind]
    seen.append(doc)
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()


KINDS = [
    "good",
    "duplicate_id",
    "duplicate_text",
    "malformed_json",
    "not_an_object",
    "blank",
    "invalid_utf8",
    "nul_bytes",
    "missing_text",
    "text_not_string",
    "bad_label",
    "missing_label",
    "bad_id",
    "controls_only",
]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=5, max_size=40),
    seed=st.integers(0, 2**16),
    truncated_last=st.booleans(),
)
def test_every_line_is_clean_quarantined_or_a_duplicate(spark, kinds, seed, truncated_last):
    rng = random.Random(seed)
    seen: list[dict] = []
    lines = [_line("good", 10_000 + i, rng, seen) for i in range(40)]  # enough to train a tokenizer on
    lines += [_line(kind, i, rng, seen) for i, kind in enumerate(kinds)]
    rng.shuffle(lines)
    if truncated_last and lines[-1] == b"":  # "...\n" + "": the file ends with its last newline, one line fewer
        lines.pop()
        kinds, truncated_last = [*kinds], False  # the same bytes: the lines before it, newline-terminated
        kinds.remove("blank")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "in"
        corpus.mkdir()
        (corpus / "mixed.jsonl").write_bytes(b"\n".join(lines) + (b"" if truncated_last else b"\n"))
        (corpus / "empty.jsonl").write_bytes(b"")
        (corpus / "spaces.jsonl").write_bytes(b"   \n \t\n")  # two blank lines
        result = run_etl(spark, str(corpus), Path(tmp) / "work", EtlConfig(vocab_size=300, min_files=1))
        rows = result.rows
        assert rows["read"] == len(lines) + 2
        assert rows["read"] == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] + rows["duplicates_near"]
        assert rows["clean"] == rows["train"] + rows["validation"] + rows["test"]
        tables = {n: read_table(spark, t["path"], t["version"]) for n, t in result.tables.items()}
        assert tables["silver"].count() == rows["clean"]
        quarantine = tables["quarantine"]
        assert quarantine.count() == rows["quarantined"]
        assert quarantine.where("reject_reason IS NULL OR source_file IS NULL").count() == 0
        assert sum(result.reject_reasons.values()) == rows["quarantined"]
        # every hostile line, and one of each pair of lines sharing an id, is quarantined
        assert rows["quarantined"] == 2 + sum(kind not in ("good", "duplicate_text") for kind in kinds)


def test_hostile_files_are_quarantined_with_their_file_and_line(spark, tmp_path):
    """Files that are not what they seem, next to good ones: the job does not fail, every bad
    record is quarantined with its reason, file and line, and the counts add up exactly."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(5)
    corpus = tmp_path / "in"
    corpus.mkdir()
    good = [
        json.dumps({"id": f"g{i}", "text": make_document(rng, LABELS[i % 4]), "label": LABELS[i % 4]})
        for i in range(40)
    ]
    good.insert(5, '{"id": "g-bad", "text": "unterminated')
    (corpus / "good.jsonl").write_text("\n".join(good) + "\n")
    (corpus / "quoted.csv").write_text(
        'id,text,label,extra\nq1,"a first line,\nthen a second one, quoted",food,x\n'
        'q2,"he said ""hello there"" twice",sports,\nq3,plain words in here,science,z\n'
    )
    (corpus / "broken.csv").write_text('id,text,label\nb1,"never closed quote,food\nb2,lost in the quote,food\n')
    pq.write_table(pa.table({"doc": ["p1", "p2"], "text": [1, 2], "label": ["food", "food"]}), corpus / "other.parquet")
    (corpus / "fake.parquet").write_text('{"id": "f1", "text": "json, not parquet", "label": "food"}\n')
    compressed = gzip.compress(("\n".join(good[:10]) + "\n").encode())
    (corpus / "binary.jsonl").write_bytes(compressed)  # gzip data without its .gz name
    huge = json.dumps({"id": "huge", "text": "word " * 2_000_000, "label": "food"})  # a single 10 MB line
    (corpus / "huge.jsonl").write_text(huge + "\n")
    (corpus / "empty.csv").write_text("")
    (corpus / "notes.txt").write_text("a text file has no label, so classification rejects it")

    result = run_etl(spark, str(corpus), tmp_path / "work", EtlConfig(vocab_size=300, min_files=1))
    rows = result.rows
    assert rows["read"] == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] + rows["duplicates_near"]
    assert rows["clean"] == 40 + 3 and rows["duplicates_exact"] == rows["duplicates_near"] == 0
    q = read_table(spark, result.tables["quarantine"]["path"], result.tables["quarantine"]["version"])
    by_file = {}
    for r in q.collect():
        by_file.setdefault(r["source_file"].rsplit("/", 1)[-1], []).append((r["source_line"], r["reject_reason"]))
    assert by_file.pop("good.jsonl") == [(5, "malformed_json")]
    assert by_file.pop("broken.csv") == [(0, "malformed_csv")]
    assert sorted(by_file.pop("other.parquet")) == [(0, "text_not_string"), (1, "text_not_string")]
    assert by_file.pop("fake.parquet") == [(0, "unreadable_file")]
    assert by_file.pop("huge.jsonl") == [(0, "too_long")]
    assert by_file.pop("notes.txt") == [(0, "missing_label")]
    binary = by_file.pop("binary.jsonl")
    assert by_file == {} and len(binary) == rows["read"] - 41 - 3 - 1 - 2 - 1 - 1 - 1
    assert {reason for _, reason in binary} <= {"invalid_utf8", "malformed_json", "blank_line", "not_an_object"}
    assert sorted(line for line, _ in binary) == list(range(len(binary)))
    assert q.where("length(raw) > 2000").count() == 0  # the 10 MB record is kept truncated


# what ingest may say of each kind of line: a usable line keeps a null reason unless its id was
# taken by another usable line (then all but one of them are duplicate_id)
USABLE = {None, "duplicate_id"}
ALLOWED = {
    "good": USABLE,
    "duplicate_id": USABLE,
    "duplicate_text": USABLE,  # an exact copy of a text: found later, by dedup
    "controls_only": USABLE,  # nothing left once cleaned: found later, by clean
    "malformed_json": {"malformed_json"},
    "not_an_object": {"not_an_object"},
    "blank": {"blank_line"},
    "invalid_utf8": {"invalid_utf8"},
    "nul_bytes": {"malformed_json"},
    "missing_text": {"missing_text"},
    "text_not_string": {"text_not_string", "missing_text"},  # a null text is a missing one
    "bad_label": {"missing_label", "bad_label_type", None},  # an integer label is a label
    "missing_label": {"missing_label"},
    "bad_id": {"bad_id"},
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=25),
    seed=st.integers(0, 2**16),
    truncated_last=st.booleans(),
)
@example(kinds=["blank"], seed=597, truncated_last=True)  # a file whose last newline ends it: no line after it
def test_ingest_gives_every_line_exactly_one_row_with_a_reason_its_kind_allows(spark, kinds, seed, truncated_last):
    """The first stage, where a line can most easily be lost or doubled, over many small inputs
    (the whole ETL is above, on fewer): one row per physical line, at its own line number."""
    from pyspark import StorageLevel

    from tokenlake.etl.ingest import flag_duplicate_ids, parse_records
    from tokenlake.etl.sources import read_sources, with_source_line

    rng = random.Random(seed)
    seen: list[dict] = []
    lines = [(_line("good", 10_000 + i, rng, seen), "good") for i in range(5)]
    lines += [(_line(kind, i, rng, seen), kind) for i, kind in enumerate(kinds)]
    rng.shuffle(lines)
    if truncated_last and lines[-1][0] == b"":  # "...\n" + "": the file ends with its last newline, one line fewer
        kinds, truncated_last = [*kinds], False  # the same bytes: the lines before it, newline-terminated
        kinds.remove(lines.pop()[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.jsonl"
        path.write_bytes(b"\n".join(raw for raw, _ in lines) + (b"" if truncated_last else b"\n"))
        parsed = parse_records(read_sources(spark, str(path))).transform(flag_duplicate_ids)
        parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            got = {r["source_line"]: r["reject_reason"] for r in with_source_line(parsed).collect()}
            assert parsed.count() == len(lines)  # and not a row more
        finally:
            parsed.unpersist()
    assert sorted(got) == list(range(len(lines)))
    for line, (_, kind) in enumerate(lines):
        assert got[line] in ALLOWED[kind], (line, kind, got[line])
    assert sum(reason == "duplicate_id" for reason in got.values()) == kinds.count("duplicate_id")


def test_a_corpus_of_every_hostile_kind_at_once_is_counted_reason_by_reason(spark, tmp_path):
    """Each kind of bad line three times, among good lines, through the whole ETL: each reason's
    count is the number of lines planted for it, and the rest are clean rows or duplicates."""
    rng = random.Random(11)
    good = [{"id": f"g{i}", "text": make_document(rng, LABELS[i % 4]), "label": LABELS[i % 4]} for i in range(60)]
    planted = {  # reason -> three lines that must get it
        "malformed_json": [b'{"id": "x%d", "text": "unterminated' % i for i in range(3)],
        "not_an_object": [b"[1, 2]", b"42", b'"text"'],
        "blank_line": [b"", b"   ", b"\t"],
        "invalid_utf8": [b'{"id": "u%d", "text": "caf\xe9 \xff", "label": "food"}' % i for i in range(3)],
        "missing_text": [json.dumps({"id": f"m{i}", "label": "food"}).encode() for i in range(3)],
        "text_not_string": [
            json.dumps({"id": f"t{i}", "text": v, "label": "food"}).encode() for i, v in enumerate([42, [1], {"a": 1}])
        ],
        "bad_label_type": [
            json.dumps({"id": f"l{i}", "text": "a b c", "label": v}).encode()
            for i, v in enumerate([[1], {"a": 1}, 1.5])
        ],
        "missing_label": [json.dumps({"id": f"k{i}", "text": "some words here"}).encode() for i in range(3)],
        "bad_id": [json.dumps({"id": v, "text": "x y z", "label": "food"}).encode() for v in ([1], {"a": 1}, 1.5)],
        "duplicate_id": [json.dumps({**good[i], "text": good[i]["text"] + " changed"}).encode() for i in range(3)],
        "empty_after_clean": [
            json.dumps({"id": f"c{i}", "text": " \u0007 ", "label": "food"}).encode() for i in range(3)
        ],
    }
    copies = [json.dumps({**good[i], "id": f"copy{i}"}).encode() for i in range(3)]  # exact duplicates
    lines = [json.dumps(d).encode() for d in good] + copies + [raw for raws in planted.values() for raw in raws]
    rng.shuffle(lines)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "all.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = run_etl(spark, str(tmp_path / "in"), tmp_path / "work", EtlConfig(vocab_size=300, min_files=1))
    assert result.reject_reasons == {reason: 3 for reason in planted}
    rows = result.rows
    assert rows["read"] == len(lines) and rows["duplicates_exact"] == 3
    assert (rows["clean"], rows["quarantined"]) == (60, 3 * len(planted))
    assert rows["read"] == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] + rows["duplicates_near"]
