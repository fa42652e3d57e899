"""The single-machine peer: a Hugging Face ``datasets`` pipeline doing what tokenlake's ETL does at
its core (clean, drop empty, tokenize with the same tokenizer, save), with ``num_proc`` = cores:
``python -m benchmarks.hf_peer --input C.jsonl --tokenizer T/tokenizer.json --out DIR``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
import unicodedata
from pathlib import Path

from benchmarks.measure import emit

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
_TOKENIZER = {}


def clean(text: str) -> str:
    """The core of ``etl.clean.clean_docs``: NFC, control characters out, white space collapsed.
    The ETL also strips markup, filters, masks PII and removes duplicates: the peer does less."""
    return _SPACE.sub(" ", _CONTROLS.sub(" ", unicodedata.normalize("NFC", text))).strip()


def _process(batch: dict, tokenizer_file: str, max_len: int) -> dict:
    from etl.tokenize import load_tokenizer

    if tokenizer_file not in _TOKENIZER:  # once per worker process
        _TOKENIZER[tokenizer_file] = load_tokenizer(tokenizer_file, max_len)
    texts = [clean(t) if isinstance(t, str) else "" for t in batch["text"]]
    ids = [e.ids for e in _TOKENIZER[tokenizer_file].encode_batch(texts)]
    return {"input_ids": ids, "n_tokens": [len(x) for x in ids], "empty": [not t for t in texts]}


def run(input_path: str, tokenizer_file: str, out: Path, num_proc: int, max_len: int) -> dict:
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    ds = load_dataset("json", data_files=input_path, split="train", cache_dir=str(out / "cache"))
    ds = ds.map(
        _process,
        batched=True,
        batch_size=1000,
        num_proc=num_proc,
        remove_columns=["text"],
        fn_kwargs={"tokenizer_file": tokenizer_file, "max_len": max_len},
    )
    ds = ds.filter(lambda b: [not e for e in b["empty"]], batched=True, batch_size=1000, num_proc=num_proc)
    ds.save_to_disk(str(out / "saved"), num_proc=num_proc)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_out": len(ds), "tokens": int(sum(ds["n_tokens"]))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument("--out", required=True)
    p.add_argument("--num-proc", type=int, default=os.cpu_count())
    p.add_argument("--max-len", type=int, default=128)
    args = p.parse_args(argv)
    emit(run(args.input, args.tokenizer, Path(args.out), args.num_proc, args.max_len))


if __name__ == "__main__":
    main()
