"""Models built from a config (no download): a BERT-style encoder for sequence classification
(``build_classifier``, or a pretrained checkpoint from a local path) and a GPT-2-style decoder for
causal language modelling (``build_causal_lm``)."""

from __future__ import annotations

from tokenlake.etl.config import Task

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def _bert_dropout(dropout: float | None) -> dict:
    return {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}


def build_classifier(
    size: str, *, vocab_size: int, labels: list[str], max_len: int, pad_id: int = 0, dropout: float | None = None
):
    """A randomly initialised ``BertForSequenceClassification`` of a size in ``SIZES``, or a
    pretrained encoder (``minilm`` or a local checkpoint directory) with a new classification head;
    ``dropout`` (None: the model's own) for its hidden layers and attention."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    if size not in SIZES:
        from tokenlake.etl.tokenize import pretrained_dir

        return AutoModelForSequenceClassification.from_pretrained(
            str(pretrained_dir(size)),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
            **_bert_dropout(dropout),
        )

    config = BertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_len,
        pad_token_id=pad_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        **SIZES[size],
        **_bert_dropout(dropout),
    )
    return BertForSequenceClassification(config)


def train_top_layers(model, layers: int) -> None:
    """Freeze a pretrained encoder's embeddings and all but its top ``layers`` layers; what sits
    above them (pooler, classification head) keeps training."""
    import torch

    base = model.base_model
    stack = max((m for m in base.modules() if isinstance(m, torch.nn.ModuleList)), key=len, default=None)
    if stack is None or layers > len(stack):
        raise ValueError(f"train.trainable_layers={layers}, but the encoder has {len(stack or [])} layers")
    embeddings = getattr(base, "embeddings", None) or base.get_input_embeddings()
    for module in [embeddings, *stack[: len(stack) - layers]]:
        module.requires_grad_(False)


GPT2_SIZES = {
    "tiny": dict(n_embd=64, n_layer=2, n_head=2),
    "small": dict(n_embd=256, n_layer=4, n_head=4),
    "base": dict(n_embd=768, n_layer=12, n_head=12),
}


def build_causal_lm(size: str, *, vocab_size: int, max_len: int, dropout: float | None = None):
    """A randomly initialised GPT-2-style decoder of a size in ``GPT2_SIZES``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if size not in GPT2_SIZES:
        raise ValueError(f"causal-lm trains tiny, small or base from scratch, not {size!r}")
    drop = {} if dropout is None else {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=max_len, **GPT2_SIZES[size], **drop))


def build_model(
    task: str,
    size: str,
    *,
    vocab_size: int,
    labels: list[str],
    max_len: int,
    dropout: float | None = None,
    top_layers: int | None = None,
):
    """The model to train; ``top_layers`` (a pretrained encoder's): fine-tune only those (``train_top_layers``)."""
    if task == Task.CAUSAL_LM:
        return build_causal_lm(size, vocab_size=vocab_size, max_len=max_len, dropout=dropout)
    model = build_classifier(size, vocab_size=vocab_size, labels=labels, max_len=max_len, dropout=dropout)
    if top_layers is not None:
        train_top_layers(model, top_layers)
    return model
