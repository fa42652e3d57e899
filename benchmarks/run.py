"""``make bench``: tokenlake measured against its ceilings and its single-machine peer, side by side.

python -m tokenlake.benchmarks.run [--mb 200] [--repeats 3] [--out benchmarks/results/latest.json]

The corpora carry the dirt the ETL exists for (exact and near copies, PII, noise, bad lines) and
web-like lengths (a long tail, mean over 2 KB); ``--short`` uses today's short clean documents.

Every ratio is taken between two measurements made in this one run, repeated (median), after a
warm-up, so that the noise of a shared machine cancels. The ETL runs each get a process of their
own (their driver's peak memory is sampled from outside); the rest runs in this process's Spark
session. Targets are printed beside the figures; a miss is reported, not hidden.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

from tokenlake.benchmarks.append import append_runs
from tokenlake.benchmarks.language import langid_cost
from tokenlake.benchmarks.measure import file_mb, machine, make_corpus, median, run_child
from tokenlake.benchmarks.predict import predict_ratio
from tokenlake.benchmarks.tokenizing import packing_fraction, tokenize_ratio
from tokenlake.benchmarks.training import bucketing_fractions, loader_ratio, training_ratios

log = logging.getLogger("tokenlake.bench")

# key: (comparison, target) -- printed and stored beside each result
TARGETS = {
    "tokenize_ratio": (">=", 0.8),
    "etl_vs_datatrove": (">=", 3.0),
    "etl_mb_per_s_per_core": (">=", 0.75),
    "append_vs_alone_ratio": ("<=", 1.3),
    "loader_ratio": (">=", 0.5),
    "loader_vs_train": (">=", 5.0),
    "train_overhead_ratio": (">=", 0.9),
    "train_startup_s": ("<=", 10.0),
    "scale_time_ratio_4x": ("<=", 4.4),
    "scale_driver_rss_ratio_4x": ("<=", 1.2),
    "packing_real_token_fraction": (">=", 0.98),
    "bucketing_real_token_fraction": (None, None),
    "padding_real_token_fraction": (None, None),
    "gx_vs_tokenize_time": ("<=", 0.3),
    "predict_ratio": (">=", 0.7),
    "langid_cost_ratio": (None, None),
    "langid_docs_per_s_per_core": (None, None),
}


# The peer's environment does not install tokenlake: it imports ``benchmarks.datatrove_peer`` from the
# folder that holds ``benchmarks/`` (the repository, or the installed ``tokenlake`` package), from any cwd.
PEER_PATH = str(Path(__file__).resolve().parents[1])


def etl_runs(
    base: Path, main: Path, work: Path, repeats: int, cores: int, peer_python: str, etl_args: list[str]
) -> dict:
    """tokenlake's ETL on the 1x and 4x corpora and the datatrove peer on the 1x one, interleaved;
    ``etl_args``: more arguments for ``benchmarks.etl_once``."""
    runs = {"1x": [], "4x": [], "datatrove": []}
    for r in range(repeats):
        for key, corpus in (("1x", base), ("4x", main)):
            result, rss = run_child(
                [
                    "tokenlake.benchmarks.etl_once",
                    "--input",
                    str(corpus),
                    "--work",
                    str(work / f"etl_{key}"),
                    "--cores",
                    str(cores),
                    *etl_args,
                ]
            )
            runs[key].append(
                {**result, "driver_peak_rss_bytes": rss, "docs_per_s": result["rows"]["read"] / result["seconds"]}
            )
            log.info("etl %s run %d: %.1f s, driver peak %.2f GiB", key, r + 1, result["seconds"], rss / 2**30)
        tokenizer = str(Path(runs["1x"][-1]["tokenizer_dir"]) / "tokenizer.json")
        peer, _ = run_child(
            ["benchmarks.datatrove_peer", "--input", str(base), "--tokenizer", tokenizer,
             "--out", str(work / "datatrove"), "--workers", str(cores)],
            python=peer_python,
            env={"PYTHONPATH": os.pathsep.join(filter(None, (PEER_PATH, os.environ.get("PYTHONPATH"))))},
        )  # fmt: skip
        shutil.rmtree(work / "datatrove", ignore_errors=True)
        runs["datatrove"].append(peer)
        log.info("datatrove run %d: %.1f s", r + 1, peer["seconds"])
    return runs


def run(args) -> dict:
    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.lake import read_table
    from tokenlake.jobs.session import get_spark
    from tokenlake.training.config import TrainConfig

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    base_mb = args.mb / 4
    kind = "short" if args.short else "web"
    base = make_corpus(work / f"corpus_{kind}_{base_mb:g}mb.jsonl", base_mb, seed=11, kind=kind)
    main = make_corpus(work / f"corpus_{kind}_{args.mb:g}mb.jsonl", args.mb, seed=12, kind=kind)
    log.info("corpora: %.1f MB and %.1f MB", file_mb(base), file_mb(main))

    etl_args = ["--master", args.etl_master]
    runs = etl_runs(base, main, work, args.repeats, args.cores, args.peer_python, etl_args)
    # a lake built from the 4x corpus (the last 4x run's) takes a small file, against that file alone
    append = append_runs(
        main, work / "etl_4x", work, args.append_mb, args.repeats, args.cores, kind=kind, etl_args=etl_args
    )
    t1, t4 = (median([r["seconds"] for r in runs[k]]) for k in ("1x", "4x"))
    m1, m4 = (median([r["driver_peak_rss_bytes"] for r in runs[k]]) for k in ("1x", "4x"))
    gx = [
        sum(v for k, v in r["timings_s"].items() if k.startswith("validate_")) / r["timings_s"]["tokenize"]
        for r in runs["4x"]
    ]
    etl_peer = [b["seconds"] / a["seconds"] for a, b in zip(runs["1x"], runs["datatrove"], strict=True)]
    mb_per_s_per_core = [file_mb(main) / r["seconds"] / args.cores for r in runs["4x"]]

    spark = get_spark("tokenlake-bench", master=f"local[{args.cores}]")
    ref = runs["1x"][-1]  # the 1x work dir holds the last 1x run's tables
    silver = read_table(spark, ref["tables"]["silver"]["path"], ref["tables"]["silver"]["version"])
    gold = read_table(spark, ref["tables"]["gold"]["path"], ref["tables"]["gold"]["version"]).persist()
    tokenizer_file = str(Path(ref["tokenizer_dir"]) / "tokenizer.json")
    max_len = EtlConfig().max_len
    meta = {"vocab_size": ref["vocab_size"], "labels": ref["labels"], "max_len": max_len}
    train_cfg = TrainConfig()

    tok = tokenize_ratio(spark, silver, tokenizer_file, max_len, args.repeats)
    pack = packing_fraction(silver, tokenizer_file, max_len)
    n_tokens = [r[0] for r in gold.where("split = 'train'").select("n_tokens").collect()]
    bucket = bucketing_fractions(n_tokens, train_cfg.rank_batch, train_cfg.bucket_batches)
    loader = loader_ratio(
        spark, gold, work, max_len, args.loader_rows, train_cfg.rank_batch, train_cfg.reader_workers, args.repeats
    )
    predict = predict_ratio(spark, silver, work, tokenizer_dir=ref["tokenizer_dir"], labels=ref["labels"],
                            vocab_size=ref["vocab_size"], max_len=max_len, rows=args.predict_rows,
                            repeats=args.repeats)  # fmt: skip
    langid = langid_cost(spark, silver, args.repeats)
    # last: its in-memory side sets this process's malloc as a rank's (training.allocator), for the
    # process's life; predict_ratio's in-process side measured after it would run with it too
    train = training_ratios(spark, gold, work, meta, args.train_steps, args.repeats)
    gold.unpersist()
    spark.stop()

    results = {
        "tokenize_ratio": tok["ratio"],
        "etl_vs_datatrove": median(etl_peer),
        "etl_mb_per_s_per_core": median(mb_per_s_per_core),
        "append_vs_alone_ratio": append["ratio"],
        "loader_ratio": loader["ratio"],
        "loader_vs_train": loader["petastorm_samples_per_s"] / train["train_samples_per_s"],
        "train_overhead_ratio": train["ratio"],
        "train_startup_s": train["startup_s"],
        "scale_time_ratio_4x": t4 / t1,
        "scale_driver_rss_ratio_4x": m4 / m1,
        "packing_real_token_fraction": pack["fraction"],
        "bucketing_real_token_fraction": bucket["bucketing"],
        "padding_real_token_fraction": bucket["padding"],
        "gx_vs_tokenize_time": median(gx),
        "predict_ratio": predict["ratio"],
        "langid_cost_ratio": langid["ratio"],
        "langid_docs_per_s_per_core": langid["docs_per_s_per_core"],
    }
    return {
        **results,
        "targets": {k: {"op": op, "value": v, "met": _met(results[k], op, v)} for k, (op, v) in TARGETS.items()},
        "machine": machine(),
        "raw": {
            "command": f"python -m tokenlake.benchmarks.run --mb {args.mb:g} --repeats {args.repeats}"
            + (" --short" if args.short else "")
            + (f" --etl-master {args.etl_master}" if args.etl_master != "local-cluster" else ""),
            "corpus": kind,
            "corpus_mb": {"1x": file_mb(base), "4x": file_mb(main)},
            "etl": {k: [_etl_summary(r) for r in v] for k, v in runs.items() if k != "datatrove"},
            "datatrove": runs["datatrove"],
            "etl_vs_datatrove": etl_peer,
            "etl_mb_per_s_per_core": mb_per_s_per_core,
            "append": {"fixed_cost_s": append["alone_seconds"], **append["raw"]},
            "gx_vs_tokenize_time": gx,
            "tokenize": tok["raw"],
            "packing": pack["raw"],
            "loader": loader["raw"],
            "training": train["raw"],
            "predict": predict["raw"],
            "langid": langid["raw"],
            "loader_samples_per_s": loader["petastorm_samples_per_s"],
            "train_samples_per_s": train["train_samples_per_s"],
            "scale": {
                "seconds_1x": t1,
                "seconds_4x": t4,
                "driver_peak_rss_bytes_1x": m1,
                "driver_peak_rss_bytes_4x": m4,
            },
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _met(value: float, op: str | None, target: float | None) -> bool | None:
    if op is None:
        return None
    return value >= target if op == ">=" else value <= target


def _etl_summary(run: dict) -> dict:
    return {k: run[k] for k in ("seconds", "docs_per_s", "driver_peak_rss_bytes", "timings_s", "rows")}


def print_table(result: dict) -> None:
    print(f"{'key':32s} {'value':>10s}  target")
    for key, (op, target) in TARGETS.items():
        status = "" if op is None else ("met" if result["targets"][key]["met"] else "MISSED")
        goal = "" if op is None else f"{op} {target:g}"
        print(f"{key:32s} {result[key]:10.3f}  {goal:8s} {status}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=float, default=200.0, help="corpus size in MB; the scale runs use mb/4 and mb")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--loader-rows", type=int, default=50_000, help="rows the loader benchmarks read")
    p.add_argument("--train-steps", type=int, default=60, help="optimizer steps per training measurement")
    p.add_argument("--predict-rows", type=int, default=20_000, help="rows predict_ratio scores")
    p.add_argument("--append-mb", type=float, default=1.0, help="size of the file appended to the 4x lake")
    p.add_argument("--short", action="store_true", help="short clean documents instead of the dirty web-like corpus")
    p.add_argument(
        "--etl-master",
        choices=("local-cluster", "local"),
        default="local-cluster",
        help="how each ETL's Spark runs: local-cluster (an executor JVM apart from the driver, whose memory "
        "scale_driver_rss_ratio_4x is about) or local (one JVM, ~20 s quicker to start: for smoke runs)",
    )
    p.add_argument(
        "--peer-python",
        default=os.environ.get("TOKENLAKE_PEER_PYTHON", str(Path.home() / ".cache/tokenlake/peer-venv/bin/python")),
        help="the interpreter of the datatrove peer's environment (make peer-venv)",
    )
    p.add_argument("--work", default="benchmarks/work")
    p.add_argument("--out", default="benchmarks/results/latest.json")
    args = p.parse_args(argv)
    from tokenlake.jobs.cli import setup_logging

    setup_logging()
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print_table(result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
