"""``predict_ratio``: what Spark costs batch inference.

samples/s of ``tokenlake predict`` (``jobs.predict.run_predict`` on a Delta table: read, clean,
mask, score in the Python workers, write the predictions and quarantine tables) ÷ samples/s of the
same model scoring the same texts in this process (``Classifier.probabilities``: the tokenizer and
the forward passes only, batches sorted by length, all cores). The model is the default size
(``tiny``) with the benchmark lake's tokenizer and labels; its weights are untrained, which does
not change what a forward pass costs. Both sides alternate, ``repeats`` times, medians.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from pyspark.sql import DataFrame

from tokenlake.benchmarks.measure import median


def tiny_bundle(where: Path, tokenizer_dir: str, labels: list[str], vocab_size: int, max_len: int) -> Path:
    """A classifier bundle (``training.text_classifier``) of the default model size."""
    from tokenlake.etl.config import EtlConfig
    from tokenlake.training.model import build_classifier
    from tokenlake.training.packaging import settings
    from tokenlake.training.text_classifier import SETTINGS_FILE

    shutil.rmtree(where, ignore_errors=True)
    build_classifier("tiny", vocab_size=vocab_size, labels=labels, max_len=max_len).save_pretrained(
        str(where / "model")
    )
    shutil.copytree(tokenizer_dir, where / "tokenizer")
    meta = settings(task="classification", labels=labels, max_len=max_len, etl=asdict(EtlConfig()), gold={})
    (where / SETTINGS_FILE).write_text(json.dumps(meta))
    return where


def predict_ratio(
    spark, silver: DataFrame, work: Path, *, tokenizer_dir: str, labels: list[str], vocab_size: int, max_len: int,
    rows: int, repeats: int,
) -> dict:  # fmt: skip
    from tokenlake.etl.lake import write_table
    from tokenlake.jobs.predict import run_predict
    from tokenlake.training.text_classifier import Classifier

    bundle = tiny_bundle(work / "predict_model", tokenizer_dir, labels, vocab_size, max_len)
    source = str(work / "predict_input")
    write_table(silver.select("id", "text", "label").limit(rows), source)
    texts = [r["text"] for r in spark.read.format("delta").load(source).select("text").collect()]
    in_process = Classifier(bundle)
    spark_rates, local_rates = [], []
    for r in range(repeats + 1):  # the first pair warms up (Python workers, JIT, caches)
        start = time.perf_counter()
        report = run_predict(spark, model=str(bundle), input_path=source, work=work / "predict_work",
                             output=str(work / "predict_output"))  # fmt: skip
        spark_seconds = time.perf_counter() - start
        start = time.perf_counter()
        in_process.probabilities(texts, 32)
        local_seconds = time.perf_counter() - start
        assert report["rows"]["scored"] == len(texts), report["rows"]
        if r:
            spark_rates.append(len(texts) / spark_seconds)
            local_rates.append(len(texts) / local_seconds)
    ratios = [a / b for a, b in zip(spark_rates, local_rates, strict=True)]
    return {
        "ratio": median(ratios),
        "raw": {
            "rows": len(texts),
            "predict_samples_per_s": spark_rates,
            "in_process_samples_per_s": local_rates,
            "ratios": ratios,
        },
    }
