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
        [("a", "train", 0, "the striker scored a goal"), ("b", "test", 1, "goal"), ("c", "test", 1, "")],
        "id string, split string, label int, text string",
    )
    out = {r["id"]: r for r in tokenize_docs(df, tokenizer_file=str(tmp_path / "tokenizer.json"), max_len=6).collect()}
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    full = tok.encode("the striker scored a goal").ids
    assert out["a"]["input_ids"] == full[:5] + [sep] and out["a"]["n_tokens"] == 6  # truncated, [SEP] kept
    assert out["b"]["input_ids"] == [cls, tok.token_to_id("goal"), sep] and out["b"]["n_tokens"] == 3
    assert out["c"]["input_ids"] == [cls, sep] and out["c"]["n_tokens"] == 2
    assert (out["a"]["split"], out["a"]["label"]) == ("train", 0)
    assert "text" not in out["a"].asDict()
