"""How well the ETL removes what the generator planted, scored against its ground truth:
``python -m tokenlake.benchmarks.etl_quality [--docs 3000] [--lang en] [--out DIR]``.

It generates a messy corpus (exact and near duplicates, PII with decoys, markup and boilerplate
noise, bad lines, skewed lengths over several files, one of which holds 80 % of the rows), runs the
whole ETL on it and prints one JSON object:

- ``conservation``: read = clean + quarantined + duplicates_exact + duplicates_near, and each count
  against the truth file (bad lines per reason, planted copies);
- ``pii``: recall and precision per type (silver text against the planted values) and decoys lost;
- ``near_duplicates``: recall and precision of the near-duplicate stage on the planted clusters;
- ``cleaning``: the share of silver documents equal to the truth's clean text (PII masked);
- ``partitions``: the gold table's balance report.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

from pyspark.sql import functions as F


def load_truth(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh]


def cluster_roots(truth: list[dict]) -> dict[str, str]:
    """Every non-bad id -> the id of the original it was copied from (itself for an original)."""
    parent = {t["id"]: t["duplicate_of"] or t["id"] for t in truth if t["kind"] != "bad"}

    def root(i: str) -> str:
        while parent[i] != i:
            i = parent[i]
        return i

    return {i: root(i) for i in parent}


def near_scores(marked: dict[str, str | None], roots: dict[str, str]) -> dict:
    """``marked``: id -> the id kept for it (null if kept). A marked row is right when its keeper
    is a copy of the same original; recall is over the planted copies."""
    sizes = Counter(roots[i] for i in marked)
    expected = sum(n - 1 for n in sizes.values())
    flagged = [(i, k) for i, k in marked.items() if k is not None]
    right = sum(roots[i] == roots[k] for i, k in flagged)
    return {
        "recall": right / expected if expected else 1.0,
        "precision": right / len(flagged) if flagged else 1.0,
        "planted_copies": expected,
        "marked": len(flagged),
    }


def score_near_duplicates(spark, truth: list[dict], cfg) -> dict:
    """The near-duplicate stage alone, on the truth's clean texts without exact copies."""
    from tokenlake.etl.minhash import with_minhash_bands
    from tokenlake.etl.neardup import mark_near_duplicates

    rows = [(t["id"], t["clean_text"]) for t in truth if t["kind"] in ("clean", "duplicate_near")]
    df = spark.createDataFrame(rows, "id string, text string").withColumn("preferred", F.lit(False))
    df = df.transform(
        with_minhash_bands, num_perm=cfg.minhash_perm, bands=cfg.minhash_bands, shingle_words=cfg.shingle_words
    ).persist()
    out = mark_near_duplicates(df, threshold=cfg.near_dup_threshold)
    marked = {r["id"]: r["near_dup_of"] for r in out.select("id", "near_dup_of").collect()}
    df.unpersist()
    return near_scores(marked, cluster_roots(truth))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--lang", choices=("en", "es"), default="en")
    p.add_argument("--out", default="benchmarks/work/quality")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.lake import read_table
    from tokenlake.etl.pii import mask_text
    from tokenlake.etl.pipeline import run_etl
    from tokenlake.jobs.session import get_spark
    from tokenlake.synthetic.generate import generate_corpus, truth_path
    from tokenlake.synthetic.scores import pii_scores

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    corpus = generate_corpus(
        out / "corpus",
        args.docs,
        seed=args.seed,
        dup_rate=0.05,
        near_dup_rate=0.1,
        pii_rate=0.3,
        noise_rate=0.3,
        bad_rate=0.05,
        skew=0.8,
        files=4,
        lang=args.lang,
    )
    truth = load_truth(truth_path(corpus))
    spark = get_spark("tokenlake-etl-quality", master="local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    cfg = EtlConfig(vocab_size=2000, min_files=4, target_file_tokens=50_000)
    result = run_etl(spark, str(corpus), out / "work", cfg)
    rows = result.rows
    silver_table = result.tables["silver"]
    silver = {r["id"]: r["text"] for r in read_table(spark, silver_table["path"], silver_table["version"]).collect()}
    by_id = {t["id"]: t for t in truth if t["kind"] != "bad"}
    kinds = Counter(t["kind"] for t in truth)
    report = {
        "corpus": {"lines": len(truth), **kinds, "lang": args.lang},
        "conservation": {
            "holds": rows["read"]
            == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] + rows["duplicates_near"],
            "rows": rows,
            "bad_lines_by_reason_match": result.reject_reasons
            == dict(Counter(t["reason"] for t in truth if t["kind"] == "bad")),
            "reject_reasons": result.reject_reasons,
            "planted": {"exact": kinds["duplicate_exact"], "near": kinds["duplicate_near"]},
        },
        "pii": {**pii_scores((by_id[i], text) for i, text in silver.items()), "counts": result.pii},
        "near_duplicates": score_near_duplicates(spark, truth, cfg),
        "cleaning": {
            "silver_equal_to_truth": sum(text == mask_text(by_id[i]["clean_text"]) for i, text in silver.items())
            / max(len(silver), 1),
        },
        "partitions": result.partitions,
    }
    print(json.dumps(report, indent=1))
    spark.stop()
    return report


if __name__ == "__main__":
    main()
