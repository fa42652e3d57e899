"""``predict_ratio``: what Spark costs batch inference.

samples/s of the scoring that ``tokenlake predict`` runs in Spark's Python workers
(``training.inference.score_frame``: the bundle shipped and loaded once per worker, Arrow batches,
rows sorted by length, one thread per task slot) ÷ samples/s of the same model scoring the same
texts in this process (``Classifier.probabilities``, all cores): both sides tokenize and run the
forward passes, nothing else. The texts are cached in Spark first (as ``predict`` caches its
cleaned rows) and the Spark side writes to the ``noop`` sink. The whole command (read a Delta
table, clean, mask, score, count, write the predictions and quarantine tables) is timed too and
reported beside it (``raw.command_samples_per_s``): at the default model size its fixed cost of
Delta reads and commits is most of it.

The model is the default size (``tiny``) with the benchmark lake's tokenizer and labels; its
weights are untrained, which does not change what a forward pass costs. The sides alternate,
after a warm-up pair, ``repeats`` times; medians.
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
    from tokenlake.training.inference import score_frame
    from tokenlake.training.text_classifier import Classifier

    bundle = tiny_bundle(work / "predict_model", tokenizer_dir, labels, vocab_size, max_len)
    source = str(work / "predict_input")
    write_table(silver.select("id", "text", "label").limit(rows), source)
    cores = spark.sparkContext.defaultParallelism
    cached = spark.read.format("delta").load(source).select("id", "text").repartition(cores).cache()
    texts = [r["text"] for r in cached.collect()]
    in_process = Classifier(bundle)
    rates: dict[str, list[float]] = {"spark": [], "in_process": [], "command": []}
    for r in range(repeats + 1):  # the first round warms up (Python workers, the model in each, the JIT)
        start = time.perf_counter()
        score_frame(cached, bundle, labels).write.format("noop").mode("overwrite").save()
        spark_seconds = time.perf_counter() - start
        start = time.perf_counter()
        in_process.probabilities(texts, 32)
        local_seconds = time.perf_counter() - start
        start = time.perf_counter()
        report = run_predict(spark, model=str(bundle), input_path=source, work=work / "predict_work",
                             output=str(work / "predict_output"))  # fmt: skip
        command_seconds = time.perf_counter() - start
        assert report["rows"]["scored"] == len(texts), report["rows"]
        if r:
            rates["spark"].append(len(texts) / spark_seconds)
            rates["in_process"].append(len(texts) / local_seconds)
            rates["command"].append(len(texts) / command_seconds)
    cached.unpersist()
    ratios = [a / b for a, b in zip(rates["spark"], rates["in_process"], strict=True)]
    return {
        "ratio": median(ratios),
        "raw": {
            "rows": len(texts),
            "spark_samples_per_s": rates["spark"],
            "in_process_samples_per_s": rates["in_process"],
            "command_samples_per_s": rates["command"],
            "ratios": ratios,
        },
    }
