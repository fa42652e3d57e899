"""``langid_cost_ratio``: what identifying each document's language adds to cleaning it.

Both sides run the clean stage's per-document work on the same texts, cached in Spark: cleaning
(``etl.clean``) and the quality rules (``etl.quality``); one of them also identifies each
document's language (``etl.language.with_language``), as ``etl.pipeline.clean_pii`` does. The
ratio is the seconds with ÷ the seconds without (1.0: free), and ``langid_docs_per_s_per_core``
the identifier's own rate (the difference of the two sides, per core). Both write to the ``noop``
sink; they alternate after a warm-up pair, ``repeats`` times; medians.
"""

from __future__ import annotations

import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tokenlake.benchmarks.measure import median


def langid_cost(spark, silver: DataFrame, repeats: int) -> dict:
    from tokenlake.etl.clean import clean_docs
    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.language import with_language
    from tokenlake.etl.quality import filter_quality

    cfg = EtlConfig()
    cores = spark.sparkContext.defaultParallelism
    texts = silver.select("id", "text").repartition(cores).persist()
    rows = texts.count()

    def clean(df: DataFrame) -> DataFrame:
        return df.transform(clean_docs, max_doc_chars=cfg.max_doc_chars).transform(filter_quality, rules=cfg)

    def with_lang(df: DataFrame) -> DataFrame:
        cleaned = df.transform(clean_docs, max_doc_chars=cfg.max_doc_chars)
        return cleaned.transform(with_language, where=F.col("reject_reason").isNull()).transform(
            filter_quality, rules=cfg
        )

    seconds: dict[str, list[float]] = {"without": [], "with": []}
    for r in range(repeats + 1):  # the first round warms up (Python workers, the fastText model)
        for side, plan in (("without", clean), ("with", with_lang)):
            start = time.perf_counter()
            texts.transform(plan).write.format("noop").mode("overwrite").save()
            if r:
                seconds[side].append(time.perf_counter() - start)
    texts.unpersist()
    ratios = [b / a for a, b in zip(seconds["without"], seconds["with"], strict=True)]
    extra = [max(b - a, 1e-9) for a, b in zip(seconds["without"], seconds["with"], strict=True)]
    return {
        "ratio": median(ratios),
        "docs_per_s_per_core": median([rows / e / cores for e in extra]),
        "raw": {"rows": rows, "seconds": seconds, "ratios": ratios},
    }
