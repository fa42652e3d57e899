"""``append_vs_alone_ratio``: what a daily append costs once the lake is large.

python -m tokenlake.benchmarks.append --lake-corpus C.jsonl --work DIR [--mb 1] [--repeats 3] [--cores N]

The lake in ``DIR/lake_run`` is built from ``C.jsonl`` once (unless ``make bench`` built it
already). Each repeat then makes a new file of about ``--mb`` MB (fresh documents, plus exact and
near copies of documents the lake holds, under new ids) and times ``run_etl`` on it twice, each in a
process of its own: appended to the lake, and alone in an empty work directory. The ratio of the
two is the price of the lake's size; the second figure alone is a run's fixed cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
from pathlib import Path

from tokenlake.benchmarks.measure import emit, file_mb, make_corpus, median, run_child, well_formed

log = logging.getLogger("tokenlake.bench")
COPY_RATE = 0.02  # exact copies, and as many near copies, of stored documents per new document


def _near(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(max(1, len(words) // 30)):  # about 3 % of the words replaced: Jaccard well above 0.8
        words[rng.randrange(len(words))] = "zzqx"
    return " ".join(words)


def _documents(lake_corpus: Path, n: int) -> list[dict]:
    """The first ``n`` well-formed, non-blank documents of the lake's corpus."""
    return list(itertools.islice((d for d in well_formed(lake_corpus) if d["text"].strip()), n))


def append_file(path: Path, lake_corpus: Path, mb: float, seed: int, kind: str = "web") -> Path:
    """About ``mb`` MB of new documents like the lake's (ids ``doc-SEED-N``: never the lake's), and
    ``COPY_RATE`` exact and as many near copies of lake documents under new ids."""
    path.unlink(missing_ok=True)
    make_corpus(path, mb, seed, kind=kind)
    new = path.read_bytes().splitlines()  # bytes: the generator's bad lines include invalid UTF-8
    rng = random.Random(seed)
    stored = _documents(lake_corpus, 20 * len(new))
    copies = []
    for k, doc in enumerate(rng.sample(stored, 2 * max(1, int(COPY_RATE * len(new))))):
        doc["id"] = f"copy-{seed}-{k}"
        if k % 2:
            doc["text"] = _near(doc["text"], rng)
        copies.append(json.dumps(doc).encode())
    path.write_bytes(b"\n".join(new + copies) + b"\n")
    return path


def append_runs(
    lake_corpus: Path,
    lake_work: Path,
    work: Path,
    mb: float,
    repeats: int,
    cores: int,
    *,
    kind: str = "web",
    etl_args: tuple[str, ...] = (),
) -> dict:
    """Each repeat: a new file appended to the lake in ``lake_work``, then alone in an empty dir
    (``etl_args``: more arguments for ``benchmarks.etl_once``)."""
    runs = {"append": [], "alone": []}
    for r in range(repeats):
        path = append_file(work / f"append_{kind}_{r}.jsonl", lake_corpus, mb, seed=1000 + r, kind=kind)
        for key, target, keep in (("append", lake_work, ["--keep"]), ("alone", work / "append_alone", [])):
            args = ["tokenlake.benchmarks.etl_once", "--input", str(path), "--work", str(target), "--cores", str(cores)]
            args += [*keep, *etl_args]
            result, _ = run_child(args)
            runs[key].append({k: result[k] for k in ("seconds", "timings_s", "rows", "tables")})
            log.info("append %s run %d: %.1f s", key, r + 1, result["seconds"])
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["append"], runs["alone"], strict=True)]
    return {
        "ratio": median(ratios),
        "alone_seconds": median([r["seconds"] for r in runs["alone"]]),
        "raw": {"file_mb": file_mb(path), "ratios": ratios, **runs},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lake-corpus", required=True, help="the corpus the lake is built from")
    p.add_argument("--work", default="benchmarks/work")
    p.add_argument("--mb", type=float, default=1.0, help="size of each appended file")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--kind", choices=("web", "short"), default="web", help="the appended documents' kind")
    args = p.parse_args(argv)
    from tokenlake.jobs.cli import setup_logging

    setup_logging()
    work, corpus = Path(args.work).resolve(), Path(args.lake_corpus).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lake = work / "lake_run"
    if not (lake / "lake" / "gold").is_dir():
        built, _ = run_child(
            ["tokenlake.benchmarks.etl_once", "--input", str(corpus), "--work", str(lake), "--cores", str(args.cores)]
        )
        log.info("lake built from %.1f MB in %.1f s", file_mb(corpus), built["seconds"])
    result = append_runs(corpus, lake, work, args.mb, args.repeats, args.cores, kind=args.kind)
    emit(result)
    print(f"append_vs_alone_ratio {result['ratio']:.3f} (alone: {result['alone_seconds']:.1f} s)")


if __name__ == "__main__":
    main()
