"""Training throughput on the path ``tokenlake train`` takes: TorchDistributor (``use_gpu`` and
NCCL on a CUDA machine, gloo on the CPU) running ``train_fn`` over a gold table read in place by
the gold reader, batches moved to the device per step. For each model size: real (non-padding)
tokens/s after warm-up, and model FLOPs utilisation over those real tokens.

python -m tokenlake.benchmarks.gpu --gold WORK/lake/gold [--version N] [--models tiny,small,base]
    [--steps 60] [--processes N] [--batch-size 32] [--max-len 128] [--peak-tflops T] [--out F.json]

``--no-spark`` takes the path of a GPU machine without Java instead (``tokenlake train
--no-spark``: ``train_without_spark`` on the gold version's files read into memory through the
Delta log; one process, or the ranks of ``torchrun``, which then share ``--work``); nothing it
imports needs pyspark, Petastorm or MLflow (``gpu_run.sh`` runs it from the source tree).

``--processes`` defaults to the number of GPUs (1 on a CPU). Each model trains one epoch on the
first ``steps x batch x processes`` train rows of gold (a Delta table of their own, so the reader
does what it does on all of gold); the rates are over the logged steps after the first
``WARMUP_STEPS``, their tokens or samples over their seconds (``benchmarks.training.steady_rate``).

MFU = real tokens/s x model FLOPs per token / peak. FLOPs per token: 6 x non-embedding
parameters, plus the attention matmuls (12 x layers x width x ``--max-len``, an upper bound of
the context). Peak: the card's dense bf16 figure (a table of known cards, or ``--peak-tflops``)
times the processes; on a CPU a measured one-thread fp32 matmul rate times the processes
(TorchDistributor runs each with one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tokenlake.benchmarks.training import first_rows, steady_rate
from tokenlake.etl.config import Task
from tokenlake.training.config import GoldData

log = logging.getLogger("tokenlake.bench")

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_flops(device, override_tflops: float | None) -> tuple[float, str]:
    """One device's peak FLOP/s and where the figure comes from."""
    import torch

    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name}: dense bf16 spec"
        raise SystemExit(f"unknown card {name!r}: pass --peak-tflops")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(1024, 1024)
        a @ a  # warm-up
        start, n = time.perf_counter(), 20
        for _ in range(n):
            a @ a
        return 2 * 1024**3 * n / (time.perf_counter() - start), "measured one-thread fp32 matmul"
    finally:
        torch.set_num_threads(threads)


def flops_per_token(model, context: int) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters + the attention matmuls."""
    cfg = model.config
    embedding = sum(
        p.numel() for n, p in model.named_parameters() if "embeddings" in n or n.endswith(("wte.weight", "wpe.weight"))
    )
    params = sum(p.numel() for p in model.parameters()) - embedding
    return 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * context


def bench_model(train: Callable, size: str, *, data: GoldData, processes: int, use_gpu: bool, batch_size: int,
                peak: float) -> dict | None:  # fmt: skip
    """One epoch of ``size`` through ``train`` (a ``TrainConfig`` to rank 0's verified result, or
    None on the other ranks of a ``torchrun`` job); its steady rates and MFU."""
    import torch

    from tokenlake.training.config import TrainConfig
    from tokenlake.training.loop import precision
    from tokenlake.training.model import build_model

    cfg = TrainConfig(model=size, epochs=1, batch_size=batch_size * processes, num_processes=processes, use_gpu=use_gpu,
                      local_mode=True, checkpoint_steps=0, baseline=False)  # fmt: skip
    result = train(cfg)
    if result is None:
        return None
    tokens_per_s = steady_rate(result["steps"], "tokens_per_s")
    model = build_model(data.task, size, vocab_size=data.vocab_size, labels=data.labels, max_len=data.max_len)
    amp = precision(cfg.mixed_precision, torch.device("cuda" if use_gpu else "cpu"))
    return {
        "model": size,
        "task": data.task,
        "params": sum(p.numel() for p in model.parameters()),
        "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp],
        "processes": processes,
        "batch_size": batch_size,
        "steps": result["steps_per_epoch"],
        "tokens_per_s": tokens_per_s,
        "samples_per_s": steady_rate(result["steps"]),
        "mfu": tokens_per_s * flops_per_token(model, data.max_len) / (peak * processes),
        "startup_s": result["startup_s"],
        "data_copy_bytes": result["data_path"]["copy_bytes"],
    }


def gold_data(labelled: bool, max_id: int, max_label: int | None, max_len: int) -> GoldData:
    """What training needs to know of a gold table, from its largest token id and label."""
    return GoldData(
        task=Task.CLASSIFICATION if labelled else Task.CAUSAL_LM,
        labels=[str(i) for i in range(max_label + 1)] if labelled else [],
        vocab_size=max_id + 1,
        max_len=max_len,
    )


def spark_trainer(args, work: Path, processes: int, use_gpu: bool) -> tuple[GoldData, Callable, str]:
    """TorchDistributor over the first rows of gold, a Delta table of their own read in place."""
    from pyspark.sql import functions as F

    from tokenlake.etl.lake import read_table
    from tokenlake.jobs.session import get_spark
    from tokenlake.training.launch import launch_training

    spark = get_spark("tokenlake-gpu-bench", driver_gpus=processes if use_gpu else 0)
    gold = read_table(spark, args.gold, args.version)
    labelled = "label" in gold.columns
    stats = gold.agg(F.max(F.array_max("input_ids")).alias("vocab"),
                     F.max("label" if labelled else F.lit(None)).alias("label")).first()  # fmt: skip
    data = gold_data(labelled, int(stats["vocab"]), stats["label"], args.max_len)
    rows = args.steps * args.batch_size * processes
    table = first_rows(gold, str(work / "gold"), rows, 2 * args.batch_size * processes, files=2 * processes)

    def train(cfg):
        return launch_training(spark, table, work / cfg.model, cfg, data)

    path = "TorchDistributor" + (" + NCCL" if use_gpu else " + gloo") + " + gold read in place"
    return data, train, path


def files_trainer(args, work: Path, processes: int, use_gpu: bool) -> tuple[GoldData, Callable, str]:
    """``tokenlake train --no-spark``'s path: the first rows of each split of the gold version's
    files, read through its Delta log into memory, in this process or as a ``torchrun`` rank."""
    import pyarrow.compute as pc

    from tokenlake.etl import storage
    from tokenlake.training.gold_files import delta_files, latest_version
    from tokenlake.training.launch import train_without_spark

    version = latest_version(args.gold) if args.version is None else args.version
    max_id, max_label, labelled = 0, None, False
    for path in delta_files(args.gold, version):
        with storage.parquet_file(path) as parquet:
            table = parquet.read(columns=[c for c in ("input_ids", "label") if c in parquet.schema_arrow.names])
        max_id = max(max_id, pc.max(pc.list_flatten(table["input_ids"])).as_py() or 0)
        if "label" in table.column_names:
            labelled, top = True, pc.max(table["label"]).as_py()  # None: a file without rows
            max_label = max(v for v in (max_label, top, -1) if v is not None)
    data = gold_data(labelled, max_id, max_label, args.max_len)
    eval_rows = 2 * args.batch_size * processes
    first = {"train": args.steps * args.batch_size * processes, "validation": eval_rows, "test": eval_rows}
    gold = {"path": args.gold, "version": version}

    def train(cfg):
        result = train_without_spark(gold, work / cfg.model, cfg, data, first_rows=first)
        return result if int(os.environ.get("RANK", "0")) == 0 else None

    launcher = "torchrun" if "RANK" in os.environ else "one process"
    path = launcher + (" + NCCL" if use_gpu else " + gloo") + " + gold files in memory (no Spark)"
    return data, train, path


def main(argv: list[str] | None = None) -> dict:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gold", required=True, help="gold Delta table (a path or a URI)")
    p.add_argument("--version", type=int)
    p.add_argument("--models", default="tiny,small,base")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per model")
    p.add_argument("--processes", type=int, help="DDP processes (default: the GPUs, else 1)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per process per step")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--peak-tflops", type=float, help="one device's peak, if the card is not in the table")
    no_spark = "train as `tokenlake train --no-spark` does (no Java): one process, or the ranks of `torchrun"
    p.add_argument(
        "--no-spark",
        action="store_true",
        help=f"{no_spark} --nproc-per-node N -m tokenlake.benchmarks.gpu --no-spark --work DIR`",
    )
    p.add_argument("--work", help="where the models train (default: a temporary folder; torchrun's ranks share one)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    use_gpu = torch.cuda.is_available()
    if args.no_spark:
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        if args.processes not in (None, processes):
            p.error(f"--no-spark runs the {processes} process(es) torchrun started: drop --processes")
        if processes > 1 and not args.work:
            p.error("torchrun's ranks train in one folder: pass --work")
        if use_gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:
        processes = args.processes or (torch.cuda.device_count() if use_gpu else 1)
    device = torch.device("cuda", torch.cuda.current_device()) if use_gpu else torch.device("cpu")
    peak, peak_source = peak_flops(device, args.peak_tflops)

    with contextlib.ExitStack() as stack:
        work = Path(args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenlake-gpu-")))
        trainer = files_trainer if args.no_spark else spark_trainer
        data, train, path = trainer(args, work, processes, use_gpu)
        models = [bench_model(train, m, data=data, processes=processes, use_gpu=use_gpu, batch_size=args.batch_size,
                              peak=peak) for m in args.models.split(",")]  # fmt: skip
    if None in models:  # another rank than 0 of a torchrun job
        return {}
    results = {
        "device": torch.cuda.get_device_name(device) if use_gpu else "cpu",
        "path": path,
        "peak_flops_per_device": peak,
        "peak_source": peak_source,
        "train_rows": args.steps * args.batch_size * processes,
        "models": models,
    }
    for r in results["models"]:
        print(
            f"{results['device']:>24s} x{r['processes']} {r['model']:5s} {r['precision']} batch {r['batch_size']} "
            f"{r['tokens_per_s']:>12,.0f} real tokens/s  MFU {r['mfu']:.3f}  start-up {r['startup_s']:.1f} s"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
