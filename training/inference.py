"""Batch inference in Spark: a model bundle scores a frame's ``text`` with Arrow batches in every
Python worker, the model loaded once per worker (``text_classifier.Classifier``), rows batched by
length within each Arrow batch.

The bundle is shipped with ``SparkContext.addFile``, so executors on other hosts need no copy of it;
each worker runs the model with ``spark.task.cpus`` threads, so that the workers of one executor
share its cores instead of each taking all of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

_LOADED: dict[str, object] = {}


def _classifier(path: str, threads: int):
    """This worker's model for ``path``, loaded on first use."""
    if path not in _LOADED:
        from tokenlake.training.text_classifier import Classifier

        _LOADED[path] = Classifier(path, threads)
    return _LOADED[path]


def output_schema(labels: list[str], keep: list[T.StructField]) -> T.StructType:
    """``keep``'s columns, then ``label``, ``score`` and ``prob_<label>`` for each label."""
    probs = [T.StructField(f"prob_{name}", T.FloatType(), False) for name in labels]
    return T.StructType([*keep, T.StructField("label", T.StringType(), False),
                         T.StructField("score", T.FloatType(), False), *probs])  # fmt: skip


def score_frame(df: DataFrame, bundle: Path, labels: list[str], *, batch_size: int = 32) -> DataFrame:
    """``df`` with ``text`` replaced by the model's ``label``, ``score`` and per-label probabilities."""
    spark = df.sparkSession
    spark.sparkContext.addFile(str(bundle), recursive=True)
    name = bundle.name
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    keep = [f for f in df.schema.fields if f.name != "text"]
    names = [f.name for f in keep]
    schema = output_schema(labels, keep)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import SparkFiles

        classifier = _classifier(SparkFiles.get(name), threads)
        for batch in batches:
            frame = classifier.predict_frame(batch.column("text").to_pylist(), batch_size)
            columns = [batch.column(n) for n in names] + [
                pa.array(frame["label"], pa.string()),
                pa.array(frame["score"], pa.float32()),
                *[pa.array(frame[f"prob_{label}"], pa.float32()) for label in labels],
            ]
            yield pa.RecordBatch.from_arrays(columns, names=schema.names)

    return df.mapInArrow(score, schema)
