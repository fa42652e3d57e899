import json

import pytest

from tokenlake.etl.tokenize import fingerprint, save_tokenizer, tokenize_docs, train_tokenizer

TEXTS = ["the striker scored a goal", "the bank raised interest rates", "bake bread with garlic"] * 50


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_trained_tokenizer_round_trips_and_is_saved_in_hf_format(tmp_path, kind):
    from transformers import AutoTokenizer

    tok = train_tokenizer(TEXTS, kind=kind, vocab_size=300)
    fp = save_tokenizer(tok, tmp_path, kind=kind, max_len=16)
    assert fp == fingerprint(tmp_path) and len(fp) == 64
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    ids = hf("the bank raised interest rates")["input_ids"]
    assert ids == tok.encode("the bank raised interest rates").ids
    assert hf.pad_token_id == 0
    assert hf.decode(ids, skip_special_tokens=True).strip() == "the bank raised interest rates"
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_max_length"] == 16


def test_tokenize_docs_truncates_and_counts(spark, tmp_path):
    tok = train_tokenizer(TEXTS, kind="wordpiece", vocab_size=300)
    save_tokenizer(tok, tmp_path, kind="wordpiece", max_len=6)
    df = spark.createDataFrame(
        [
            ("a", "train", 0, "the striker scored a goal"),
            ("b", "test", 1, "goal"),
            ("c", "test", 1, ""),
            ("d", "train", 0, "bread " * 20 + "the bank " * 50),
        ],  # encoded up to a space after 48 characters
        "id string, split string, label int, text string",
    )
    out = {r["id"]: r for r in tokenize_docs(df, tokenizer_file=str(tmp_path / "tokenizer.json"), max_len=6).collect()}
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    full = tok.encode("the striker scored a goal").ids
    assert out["a"]["input_ids"] == full[:5] + [sep] and out["a"]["n_tokens"] == 6  # truncated, [SEP] kept
    assert out["b"]["input_ids"] == [cls, tok.token_to_id("goal"), sep] and out["b"]["n_tokens"] == 3
    assert out["c"]["input_ids"] == [cls, sep] and out["c"]["n_tokens"] == 2
    assert out["d"]["input_ids"] == tok.encode("bread " * 20 + "the bank " * 50).ids[:5] + [sep]
    assert (out["a"]["split"], out["a"]["label"]) == ("train", 0)
    assert "text" not in out["a"].asDict()


def _hostile_texts(n: int = 400) -> list[str]:
    """Long texts whose words, white space and scripts test where a prefix may be cut."""
    import random

    rng = random.Random(3)
    words = [
        "goal", "striker", "Interest", "rates", "bread", "garlic", "naïve", "cafe\u0301", "Straße", "ΣΟΦΙΑΣ",
        "東京都", "😀😀", "https://example.com/a_very/long/path?q=1&r=2", "don't", "x" * 60, "3.14159", "__init__",
        "[SEP]", "<s>", "e-mail", "a\u00a0b", "tab\there", "line\nbreak", "  ", "1234567890" * 3,
    ]  # fmt: skip
    texts = []
    for _ in range(n):
        length = rng.choice([5, 50, 300, 2000])
        texts.append(" ".join(rng.choice(words) for _ in range(length)))
    return texts + ["x" * 5000, " " * 3000 + "word", "東京" * 2000, ""]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "minilm"])
@pytest.mark.parametrize("max_len", [4, 32, 128])
def test_a_truncating_encode_of_prefixes_gives_the_ids_of_whole_texts(tmp_path, kind, max_len):
    from tokenlake.etl.tokenize import _cut, encode_texts, load_tokenizer, prefix_chars, pretrained_dir

    texts = _hostile_texts()
    if kind == "minilm":
        path = pretrained_dir("minilm") / "tokenizer.json"
    else:
        save_tokenizer(train_tokenizer(texts, kind=kind, vocab_size=500), tmp_path, kind=kind, max_len=max_len)
        path = tmp_path / "tokenizer.json"
    prefix = prefix_chars(path.read_text(), max_len)
    assert prefix == 8 * max_len  # each of these tokenizers splits words at spaces
    assert sum(_cut(t, prefix) is not t for t in texts) > len(texts) // 3  # most long texts are cut
    assert _cut("one  two   three", 4) == "one  two"  # at a word's end, never inside a run of spaces
    tok = load_tokenizer(str(path), max_len)
    (ids, n), (whole_ids, whole_n) = encode_texts(tok, texts, prefix), encode_texts(tok, texts)
    assert ids.to_pylist() == whole_ids.to_pylist() and n.to_pylist() == whole_n.to_pylist()


def test_tokenizers_that_may_join_words_across_a_space_encode_whole_texts():
    from tokenlake.etl.tokenize import prefix_chars

    bert = {"normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"}, "added_tokens": []}
    assert prefix_chars(json.dumps(bert), 16) == 128
    assert prefix_chars(json.dumps(bert), None) is None  # no truncation (packing): every token is needed
    unsafe = [
        {"pre_tokenizer": None},  # the whole text is one word
        {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\n"}, "behavior": "Isolated"}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Split"}]}},
        {"pre_tokenizer": {"type": "ByteLevel", "use_regex": False}},
        {"pre_tokenizer": {"type": "Metaspace", "split": False}},
        {"normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": ""}},
        {"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}},
        {"added_tokens": [{"content": "New York"}]},
    ]
    for change in unsafe:
        assert prefix_chars(json.dumps(bert | change), 16) is None, change


def test_a_classifiers_tokenizer_learns_from_the_part_of_each_train_text_that_gold_keeps(spark):
    from tokenlake.etl.gold import tokenizer_sample

    long, accented = "alpha " * 100 + "omega", "naïve " * 20
    df = spark.createDataFrame(
        [("a", "train", long), ("b", "train", "short text"), ("c", "test", "held out"), ("d", "train", accented)],
        "id string, split string, text string",
    )
    assert sorted(tokenizer_sample(df, 10)) == sorted([long, "short text", accented])  # the train split, whole
    assert sorted(tokenizer_sample(df, 10, chars=40)) == sorted(
        ["alpha " * 6 + "alpha", "short text", "naïve " * 6 + "naïve"]
    )
    assert list(tokenizer_sample(df, 10, chars=8)) == list(tokenizer_sample(df, 10, chars=8))  # the same on every run
    assert "naïve naïve" in tokenizer_sample(df, 10, chars=8)  # a word runs to its end, accents included


def test_a_tokenizer_sample_is_the_train_rows_with_the_smallest_hashes_read_where_they_lie(spark):
    """The first ``n`` train rows by (xxhash64 of id, id), whatever the partitioning, streamed to the
    driver a partition at a time (an iterator, not a list gathered in one partition)."""
    from pyspark.sql import functions as F

    from tokenlake.etl.gold import tokenizer_sample

    rows = [(f"id{i}", "test" if i % 5 == 0 else "train", f"text {i}") for i in range(60)]
    df = spark.createDataFrame(rows, "id string, split string, text string").repartition(4)
    order = df.where("split = 'train'").orderBy(F.xxhash64("id"), "id").select("text").collect()
    for n in (1, 7, 48, 100):
        sample = tokenizer_sample(df, n)
        assert not isinstance(sample, list)
        assert sorted(sample) == sorted(r[0] for r in order[:n])
    assert list(tokenizer_sample(df.where("split = 'test'"), 5)) == []
