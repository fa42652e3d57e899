"""The tokenize stage measured against its ceiling, and packing's real-token fraction, both in the
bench's own Spark session on the 1x run's silver."""

from __future__ import annotations

import time

from tokenlake.benchmarks.measure import median


def tokenize_ratio(spark, silver, tokenizer_file: str, max_len: int, repeats: int) -> dict:
    """The tokenize stage's function in Spark vs ``encode_batch`` on the same texts (both encoding
    the prefixes the stage encodes), both from memory; beside them, ``encode_batch`` on whole texts."""
    from pathlib import Path

    from pyspark.sql import functions as F

    from tokenlake.etl.tokenize import encode_texts, load_tokenizer, prefix_chars, tokenize_docs

    docs = silver.select("id", "split", "text").persist()
    docs.count()
    texts = docs.select("text").toArrow().column("text").to_pylist()
    tok = load_tokenizer(tokenizer_file, max_len)
    batch = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000"))
    prefix = prefix_chars(Path(tokenizer_file).read_text(), max_len)

    def spark_side() -> tuple[int, float]:
        start = time.perf_counter()
        tokens = tokenize_docs(docs, tokenizer_file=tokenizer_file, max_len=max_len).agg(F.sum("n_tokens")).first()[0]
        return int(tokens), time.perf_counter() - start

    def raw_side(cut: int | None = prefix) -> tuple[int, float]:
        start = time.perf_counter()
        chunks = (texts[i : i + batch] for i in range(0, len(texts), batch))
        tokens = sum(sum(encode_texts(tok, chunk, cut)[1].to_pylist()) for chunk in chunks)
        return tokens, time.perf_counter() - start

    spark_side(), raw_side()  # warm-up: Python workers, tokenizer caches
    spark_rates, raw_rates, whole_rates = [], [], []
    for _ in range(repeats):
        (spark_tokens, s), (raw_tokens, r), (whole_tokens, w) = spark_side(), raw_side(), raw_side(None)
        if not spark_tokens == raw_tokens == whole_tokens:
            raise AssertionError(f"tokens: Spark {spark_tokens}, encode_batch {raw_tokens}, whole texts {whole_tokens}")
        spark_rates.append(spark_tokens / s)
        raw_rates.append(raw_tokens / r)
        whole_rates.append(whole_tokens / w)
    docs.unpersist()
    return {
        "ratio": median([a / b for a, b in zip(spark_rates, raw_rates, strict=True)]),
        "raw": {
            "docs": len(texts),
            "tokens": raw_tokens,
            "spark_tokens_per_s": spark_rates,
            "encode_batch_tokens_per_s": raw_rates,
            "prefix_chars": prefix,
            "encode_batch_whole_texts_tokens_per_s": whole_rates,
        },
    }


def packing_fraction(silver, tokenizer_file: str, block_len: int) -> dict:
    from pyspark.sql import functions as F

    from tokenlake.etl.pack import pack_blocks
    from tokenlake.etl.tokenize import tokenize_docs

    tokens = tokenize_docs(silver.select("id", "split", "text"), tokenizer_file=tokenizer_file, max_len=None)
    row = (
        pack_blocks(tokens, block_len=block_len)
        .agg(F.count("*").alias("blocks"), F.sum("n_tokens").alias("real"))
        .first()
    )
    return {
        "fraction": row["real"] / (row["blocks"] * block_len),
        "raw": {"blocks": row["blocks"], "real_tokens": row["real"], "block_len": block_len},
    }
