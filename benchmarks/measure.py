"""What every benchmark needs: medians, a child process's peak driver memory, the machine."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

RESULT_PREFIX = "BENCH_RESULT "
log = logging.getLogger("tokenlake.bench")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


EXECUTOR_MARKERS = ("pyspark.daemon", "pyspark.worker", "CoarseGrainedExecutorBackend")


def _driver_processes(root):
    """The driver: the Python process and its JVM, not executors nor the Python workers they fork,
    nor a child that is still a copy of its parent: the JVM starts a helper for each shell command
    Hadoop runs (``readlink`` on every Delta commit, with no native Hadoop library), and between
    its spawn and its exec the child reports the parent's whole RSS (the same pages): a sampler
    that lands there counted the driver's JVM twice (2.5-2.8 GiB peaks for 1.3-1.6 GiB)."""
    procs = [root]
    for child in root.children(recursive=True):
        try:
            cmd = child.cmdline()
            copy = cmd == child.parent().cmdline()
        except Exception:  # gone already
            continue
        if not copy and not any(marker in " ".join(cmd) for marker in EXECUTOR_MARKERS):
            procs.append(child)
    return procs


def run_child(
    args: list[str], *, env: dict | None = None, interval_s: float = 0.05, python: str | None = None
) -> tuple[dict, int]:
    """Run ``python -m ARGS`` (this interpreter unless ``python``); return the JSON it printed after
    ``RESULT_PREFIX`` and the peak sum of the RSS of its driver processes (Python + JVM), sampled
    every ``interval_s``."""
    import psutil

    proc = subprocess.Popen(
        [python or sys.executable, "-m", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in _driver_processes(root))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 and not lines:
        start = err.find("Traceback")  # the Python error, not the JVM's shutdown noise after it
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{err[max(start, 0) :][:4000]}")
    if proc.returncode != 0:  # e.g. a local-cluster shutdown race after the work was done
        log.warning("%s exited %d after printing its result", " ".join(args), proc.returncode)
    if not lines:
        raise RuntimeError(f"{' '.join(args)} printed no result:\n{out[-2000:]}\n{err[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :]), peak


def emit(result: dict) -> None:
    """How a child process hands its result to ``run_child``."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def machine() -> dict:
    import psutil

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    versions = {}
    for package in ("pyspark", "delta-spark", "petastorm", "pyarrow", "torch", "tokenizers", "transformers",
                    "great-expectations", "mlflow"):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "java": java[0] if java else None,
        "versions": versions,
    }


def well_formed(path: Path):
    """The corpus lines that parse as a JSON object with a string ``text``, as dicts (the
    generator's bad lines, invalid UTF-8 among them, do not)."""
    with path.open("rb") as fh:
        for raw in fh:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("text"), str):
                yield doc


def corpus_docs(mb: float, bytes_per_doc: float) -> int:
    return max(200, round(mb * 1e6 / bytes_per_doc))


CORPUS_KINDS = {
    # the dirt the ETL exists for, at once, and lengths like crawled pages (mean over 2 KB)
    "web": {
        "dup_rate": 0.03,
        "near_dup_rate": 0.03,
        "pii_rate": 0.1,
        "noise_rate": 0.1,
        "bad_rate": 0.01,
        "web_lengths": True,
    },
    "short": {},  # short clean documents
}


def make_corpus(path: Path, mb: float, seed: int, *, kind: str = "web") -> Path:
    """A generated corpus of about ``mb`` MB of ``CORPUS_KINDS[kind]`` (deterministic per seed)."""
    from tokenlake.synthetic.generate import generate_corpus, truth_path

    if not path.exists():
        probe = generate_corpus(path.with_suffix(".probe"), 2000, seed, **CORPUS_KINDS[kind])
        per_doc = probe.stat().st_size / 2000
        probe.unlink()
        truth_path(probe).unlink(missing_ok=True)  # a dirty probe writes its truth too (~5 MB)
        generate_corpus(path, corpus_docs(mb, per_doc), seed, **CORPUS_KINDS[kind])
    return path


def file_mb(path: Path) -> float:
    return path.stat().st_size / 1e6
