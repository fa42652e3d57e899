"""Packing for causal language modelling: token streams cut into fixed-length blocks.

Each document already ends with its end marker (the tokenizer's template: ``</s>`` for BPE,
``[SEP]`` for WordPiece). Within each Spark partition and
each split, documents are concatenated and cut into ``block_len`` blocks, so no block mixes
splits; only the last block of each (partition, split) is shorter. Arrow-batched, numpy slicing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import types as T

SCHEMA = T.StructType(
    [
        T.StructField("id", T.StringType(), False),
        T.StructField("split", T.StringType(), False),
        T.StructField("input_ids", T.ArrayType(T.IntegerType(), False), False),
        T.StructField("n_tokens", T.IntegerType(), False),
    ]
)


def _blocks(tokens: np.ndarray, block_len: int) -> tuple[pa.ListArray, pa.Array]:
    n_tokens = np.full(len(tokens) // block_len + (len(tokens) % block_len > 0), block_len, dtype=np.int32)
    if len(tokens) % block_len:
        n_tokens[-1] = len(tokens) % block_len
    offsets = np.zeros(len(n_tokens) + 1, dtype=np.int32)
    np.cumsum(n_tokens, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens, type=pa.int32())), pa.array(n_tokens)


def pack_blocks(df: DataFrame, *, block_len: int, prefix: str = "") -> DataFrame:
    """``split, input_ids`` rows (whole documents) -> ``id, split, input_ids, n_tokens`` blocks;
    block ids are ``{prefix}{split}-{partition}-{index}`` (a prefix keeps appended blocks apart)."""

    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId()
        rest: dict[str, np.ndarray] = {}
        counter: dict[str, int] = {}

        def emit(split: str, tokens: np.ndarray) -> pa.RecordBatch:
            ids, n_tokens = _blocks(tokens, block_len)
            first = counter.get(split, 0)
            counter[split] = first + len(n_tokens)
            names = pa.array([f"{prefix}{split}-{partition:05d}-{first + i:08d}" for i in range(len(n_tokens))])
            return pa.RecordBatch.from_arrays(
                [names, pa.array([split] * len(n_tokens)), ids, n_tokens],
                names=["id", "split", "input_ids", "n_tokens"],
            )

        for batch in batches:
            splits = batch.column("split")
            for split in pc.unique(splits).to_pylist():
                flat = pc.list_flatten(pc.filter(batch.column("input_ids"), pc.equal(splits, split)))
                stream = np.concatenate([rest.get(split, np.empty(0, np.int32)), flat.to_numpy()])
                full = len(stream) - len(stream) % block_len
                rest[split] = stream[full:]
                if full:
                    yield emit(split, stream[:full])
        for split, tokens in sorted(rest.items()):
            if len(tokens):
                yield emit(split, tokens)

    return df.select("split", "input_ids").mapInArrow(pack, SCHEMA)
