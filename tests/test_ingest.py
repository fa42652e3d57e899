from tokenlake.etl.ingest import flag_changed_ids, flag_duplicate_ids, parse_records, read_jsonl

LINES = [
    (b'{"id": "a", "text": "hello world", "label": "pos"}', ("a", "hello world", "pos", None)),
    (b'{"id": 7, "text": "int id and label", "label": 1}', ("7", "int id and label", "1", None)),
    (b'{"text": "no id here", "label": "neg"}', (None, "no id here", "neg", None)),
    (b'{"id": "b", "text": 123, "label": "pos"}', ("b", None, None, "text_not_string")),
    (b'{"id": "c", "text": ["x"], "label": "pos"}', ("c", None, None, "text_not_string")),
    (b'{"id": "d", "text": null, "label": "pos"}', ("d", None, None, "missing_text")),
    (b'{"id": "e", "label": "pos"}', ("e", None, None, "missing_text")),
    (b'{"id": "f", "text": "ok", "label": 1.5}', ("f", None, None, "bad_label_type")),
    (b'{"id": "g", "text": "ok", "label": {"x": 1}}', ("g", None, None, "bad_label_type")),
    (b'{"id": "h", "text": "ok"}', ("h", None, None, "missing_label")),
    (b'{"id": {"n": 1}, "text": "ok", "label": "pos"}', (None, None, None, "bad_id")),
    (b'{"id": "i", "text": "caf\xff", "label": "pos"}', (None, None, None, "invalid_utf8")),
    (b'{"id": "j", "text": "truncated', (None, None, None, "malformed_json")),
    (b'["a list"]', (None, None, None, "not_an_object")),
    (b"   ", (None, None, None, "blank_line")),
]


def _parse(spark, tmp_path, lines, **kw):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return parse_records(read_jsonl(spark, str(path)), **kw)


def test_every_line_is_parsed_or_gets_a_reason(spark, tmp_path):
    rows = _parse(spark, tmp_path, [line for line, _ in LINES]).collect()
    assert len(rows) == len(LINES)  # nothing is dropped
    for row, (_, (id_, text, label, reason)) in zip(
        sorted(rows, key=lambda r: r["raw"]), sorted(LINES, key=lambda x: x[0].decode("utf-8", "replace")), strict=True
    ):
        assert row["reject_reason"] == reason, row
        if reason is None:
            assert row["text"] == text and row["label"] == label
            if id_ is not None:
                assert row["id"] == id_
        assert row["source_file"].endswith("in.jsonl")


def test_missing_id_is_the_text_hash(spark, tmp_path):
    import hashlib

    row = _parse(spark, tmp_path, [b'{"text": "no id here", "label": "neg"}']).first()
    assert row["id"] == hashlib.sha256(b"no id here").hexdigest()


def test_labels_are_optional_for_causal_lm(spark, tmp_path):
    row = _parse(spark, tmp_path, [b'{"id": "h", "text": "ok"}'], require_label=False).first()
    assert row["reject_reason"] is None and row["label"] is None


def test_configurable_text_column(spark, tmp_path):
    row = _parse(spark, tmp_path, [b'{"id": "h", "body": "in body", "label": "x"}'], text_column="body").first()
    assert (row["text"], row["reject_reason"]) == ("in body", None)


def test_configurable_id_and_label_columns_with_any_characters_in_their_names(spark, tmp_path):
    lines = [
        b'{"doc.id": 7, "the body": "in body", "it\'s": "x", "id": "other", "label": "y"}',
        b'{"doc.id": 8, "the body": "no label", "label": "y"}',
    ]
    cols = {"text_column": "the body", "label_column": "it's", "id_column": "doc.id"}
    first, second = _parse(spark, tmp_path, lines, **cols).orderBy("id").collect()
    assert (first["id"], first["text"], first["label"], first["reject_reason"]) == ("7", "in body", "x", None)
    assert first["meta"] == {"id": "other", "label": "y"}  # the other fields are kept, not taken
    assert (second["id"], second["reject_reason"]) == ("8", "missing_label")


def test_duplicate_ids_keep_one_deterministically(spark):
    df = spark.createDataFrame(
        [
            ("a", "zzz", "f2", None),
            ("a", "aaa", "f1", None),
            ("a", "bad", "f1", "malformed_json"),
            ("b", "x", "f", None),
        ],
        "id string, text string, source_file string, reject_reason string",
    )
    out = {(r["id"], r["text"]): r["reject_reason"] for r in flag_duplicate_ids(df).collect()}
    assert out == {("a", "aaa"): None, ("a", "zzz"): "duplicate_id", ("a", "bad"): "malformed_json", ("b", "x"): None}


def test_a_stored_id_with_another_text_is_flagged_and_no_stored_id_costs_no_text_read(spark):
    schema = "id string, text string, reject_reason string"
    stored = spark.createDataFrame([("a", "same"), ("b", "old")], "id string, text string")
    df = spark.createDataFrame(
        [("a", "same", None), ("b", "new", None), ("c", "fresh", None), ("b", "x", "malformed_json")], schema
    )
    out = {(r["id"], r["text"]): r["reject_reason"] for r in flag_changed_ids(df, stored=stored).collect()}
    assert out == {
        ("a", "same"): None,
        ("b", "new"): "duplicate_id",
        ("c", "fresh"): None,
        ("b", "x"): "malformed_json",
    }
    # no usable id of the input is stored (a rejected row's id does not count): the input itself
    unseen = spark.createDataFrame([("c", "fresh", None), ("a", "y", "malformed_json")], schema)
    assert flag_changed_ids(unseen, stored=stored) is unseen
