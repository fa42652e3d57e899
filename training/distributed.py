"""The function that TorchDistributor runs on every rank: DDP over Petastorm shards.

Every rank runs the same number of steps (readers chained pass after pass, a fixed step count),
collectives time out after ``collective_timeout_s``, and rank 0's result is broadcast and
confirmed by every rank, so the driver can tell a real success from a silent failure (STACK.md).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import os
import time


def _device(use_gpu: bool):
    import torch

    if use_gpu:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def progress_printer(epoch: int, epochs: int, steps: int, world: int, stream=None):
    """Rank 0's progress: a redrawn bar on a terminal, else a plain line every ~10% of the epoch."""
    import sys

    stream = stream or sys.stdout
    tty, every = stream.isatty(), max(1, steps // 10)

    def on_step(step: int, m: dict) -> None:
        done = step + 1
        if not tty and done % every and done != steps:
            return
        bar = "#" * (20 * done // steps) + "." * (20 - 20 * done // steps) if tty else ""
        line = (
            f"epoch {epoch}/{epochs} {bar} step {done}/{steps} loss {m['loss']:.4f} lr {m['lr']:.2e} "
            f"samples/s {m['samples_per_s'] * world:,.0f}"
        )
        stream.write(("\r" + line + ("\n" if done == steps else "")) if tty else line + "\n")
        stream.flush()

    return on_step


def _rank0_steps(epoch: int, epochs: int, steps: int, world: int, step_log: list, first: dict, points: int = 50):
    """Rank 0's step hook: the progress line, and about ``points`` per-step rows per epoch (loss,
    learning rate, whole-job samples/s and tokens/s) kept for MLflow; ``first["at"]``: the wall
    clock at the end of this process's first optimizer step."""
    printer, every = progress_printer(epoch + 1, epochs, steps, world), max(1, steps // points)

    def on_step(step: int, m: dict) -> None:
        first.setdefault("at", time.time())
        printer(step, m)
        if (step + 1) % every == 0 or step + 1 == steps:
            step_log.append(
                {
                    "step": epoch * steps + step + 1,
                    "loss": m["step_loss"],
                    "lr": m["lr"],
                    "samples_per_s": m["step_samples_per_s"] * world,
                    "tokens_per_s": m["step_tokens_per_s"] * world,
                }
            )

    return on_step


def _evaluate_split(model, split, spec: dict, rank: int, world: int, device, amp_dtype) -> dict:
    """Every rank evaluates its shard; the sums are all-reduced once (no per-batch collective, so
    uneven shards cannot hang), then turned into metrics."""
    import torch.distributed as dist

    from training.loop import evaluate, evaluate_lm, lm_metrics, metrics

    with split.make_torch_dataloader(
        batch_size=spec["eval_batch_size"],
        num_epochs=1,
        cur_shard=rank,
        shard_count=world,
        workers_count=spec["reader_workers"],
        shuffle_row_groups=False,
    ) as loader:
        if spec["task"] == "causal-lm":
            sums = evaluate_lm(model, loader, device=device, amp_dtype=amp_dtype)
        else:
            sums = evaluate(model, loader, num_labels=len(spec["labels"]), device=device, amp_dtype=amp_dtype)
    for key, value in sums.items():
        on_device = value.to(device)
        dist.all_reduce(on_device)
        sums[key] = on_device.cpu()
    if spec["task"] == "causal-lm":
        return lm_metrics(sums)
    return {**metrics(sums), "confusion": sums["confusion"].tolist()}


EVAL_KEYS = {"classification": ("loss", "accuracy", "macro_f1"), "causal-lm": ("loss", "perplexity")}


def train_fn(spec: dict, splits: dict) -> dict:
    """Train on ``splits["train"]``, evaluate on validation each epoch and on test at the end
    (``splits``: each split's reader, ``gold_reader.GoldSplit`` or ``gold_files.TensorSplit``).

    ``spec`` holds the train config (``asdict(TrainConfig)``) plus what the data defines
    (``task``, ``labels``, ``vocab_size``, ``max_len``, ``train_rows``, ``model_dir``).
    """
    from datetime import timedelta

    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from etl.storage import local_dir
    from training import checkpoint
    from training.data import length_bucketed, passes, steps_per_epoch
    from training.loop import fit_epoch, make_optimizer, precision, stop_early
    from training.model import build_model

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = _device(spec["use_gpu"])
    dist.init_process_group(
        "nccl" if spec["use_gpu"] else "gloo", timeout=timedelta(seconds=spec["collective_timeout_s"])
    )
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"] + rank)  # Petastorm's shuffling buffer draws from numpy's global RNG
    model = build_model(
        spec["task"], spec["model"], vocab_size=spec["vocab_size"], labels=spec["labels"], max_len=spec["max_len"]
    ).to(device)
    if spec["grad_checkpointing"]:
        model.gradient_checkpointing_enable()
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    steps = steps_per_epoch(spec["train_rows"], spec["batch_size"] * spec["grad_accum_steps"], world)
    opt, sched = make_optimizer(
        model,
        lr=spec["lr"],
        weight_decay=spec["weight_decay"],
        total_steps=steps * spec["epochs"],
        warmup_ratio=spec["warmup_ratio"],
    )
    amp_dtype = precision(spec["mixed_precision"], device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    history, step_log, stepped, start = [], [], {}, time.perf_counter()
    parts = {"model": model, "opt": opt, "sched": sched}
    where = checkpoint.position(spec["resume_from"]) if spec["resume_from"] else {"epoch": 0, "step": 0}
    first_epoch, first_step = where["epoch"], where["step"]

    def save(epoch: int, step: int) -> None:
        where = {"epoch": epoch, "step": step, "global_step": epoch * steps + step, "history": history,
                 "steps": step_log, "lineage": spec["lineage"], "mlflow_run_id": spec["mlflow_run_id"]}  # fmt: skip
        checkpoint.save(spec["checkpoint_dir"], rank=rank, barrier=dist.barrier, where=where, **parts)

    def after_step(epoch: int):
        every = spec["checkpoint_steps"]
        return lambda step: save(epoch, step + 1) if every and (epoch * steps + step + 1) % every == 0 else None

    def open_pass(n: int):
        return splits["train"].make_torch_dataloader(
            batch_size=spec["batch_size"],
            num_epochs=1,
            cur_shard=rank,
            shard_count=world,
            workers_count=spec["reader_workers"],
            seed=spec["seed"] + n,
            shuffle_rows=True,
            shuffling_queue_capacity=4096,
        )

    rows = passes(open_pass, spec["batch_size"])
    with contextlib.closing(rows):  # stops the open reader when training ends
        batches = length_bucketed(rows, spec["bucket_batches"], seed=spec["seed"] + rank)
        if spec["resume_from"]:
            # The data order is a function of the seeds alone, so replaying it up to the checkpoint
            # puts the batches the killed run would have seen next in front of this one (reading is
            # far faster than training: benchmarks' loader_vs_train). RNGs are restored after it.
            consumed = (first_epoch * steps + first_step) * spec["grad_accum_steps"]
            collections.deque(itertools.islice(batches, consumed), maxlen=0)
            where = checkpoint.load(spec["resume_from"], rank=rank, device=device, **parts)
            history, step_log = where["history"], where["steps"]
            if rank == 0:
                print(f"resumed from {spec['resume_from']}: epoch {first_epoch + 1}, step {first_step}", flush=True)
        for epoch in range(first_epoch, spec["epochs"]):
            if stop_early(history, spec["early_stopping_patience"], spec["early_stopping_min_delta"]):
                break  # every rank holds the same all-reduced history, so every rank stops here
            stats = fit_epoch(
                ddp,
                batches,
                steps=steps,
                opt=opt,
                sched=sched,
                device=device,
                grad_accum_steps=spec["grad_accum_steps"],
                max_grad_norm=spec["max_grad_norm"],
                amp_dtype=amp_dtype,
                scaler=scaler,
                on_step=_rank0_steps(epoch, spec["epochs"], steps, world, step_log, stepped) if rank == 0 else None,
                start_step=first_step if epoch == first_epoch else 0,
                after_step=after_step(epoch),
            )
            val = _evaluate_split(model, splits["validation"], spec, rank, world, device, amp_dtype)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": stats["loss"],
                    "lr": sched.get_last_lr()[0],
                    "samples_per_s": stats["samples"] * world / stats["seconds"],
                    "tokens_per_s": stats["tokens"] * world / stats["seconds"],
                    "real_token_fraction": stats["real_token_fraction"],
                    **{f"val_{k}": val[k] for k in EVAL_KEYS[spec["task"]]},
                }
            )
            if rank == 0:
                print(f"epoch {epoch + 1}/{spec['epochs']} {history[-1]}", flush=True)
            save(epoch + 1, 0)
    test = _evaluate_split(model, splits["test"], spec, rank, world, device, amp_dtype)
    if rank == 0:
        with local_dir(spec["model_dir"]) as out:
            model.save_pretrained(out)
    result = [
        {
            "rank": rank,
            "world_size": world,
            "steps_per_epoch": steps,
            "history": history,
            "steps": step_log,
            "train_seconds": time.perf_counter() - start,
            "first_step_at": stepped.get("at"),
            "test": test,
        }
    ]
    dist.broadcast_object_list(result, src=0)
    confirmed = torch.ones((), dtype=torch.int64, device=device)
    dist.all_reduce(confirmed)
    result[0]["ranks_confirmed"] = int(confirmed)
    # Free DDP's gloo threads before tearing the group down (a rank once deadlocked at exit).
    parts.clear()
    del ddp, opt, model
    gc.collect()
    dist.destroy_process_group()
    return result[0]
