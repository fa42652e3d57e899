"""Models built from a config (no download): a BERT-style encoder for sequence classification."""

from __future__ import annotations

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def build_classifier(size: str, *, vocab_size: int, labels: list[str], max_len: int, pad_id: int = 0):
    """A randomly initialised ``BertForSequenceClassification`` of a size in ``SIZES``, or a
    pretrained encoder (``minilm`` or a local checkpoint directory) with a new classification head."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    if size not in SIZES:
        from etl.tokenize import pretrained_dir

        return AutoModelForSequenceClassification.from_pretrained(
            str(pretrained_dir(size)), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)})

    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_len, pad_token_id=pad_id,
                        num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={n: i for i, n in enumerate(labels)}, **SIZES[size])
    return BertForSequenceClassification(config)
