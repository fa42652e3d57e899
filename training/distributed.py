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
from dataclasses import dataclass, field
from typing import Any

from tokenlake.training.config import TrainSpec
from tokenlake.training.epochs import evaluate_split, run_epochs


def _device(use_gpu: bool):
    import torch

    if use_gpu:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@dataclass
class RankState:
    """What the phases of ``train_fn`` share on one rank."""

    spec: TrainSpec
    rank: int
    world: int
    device: Any
    model: Any = None
    ddp: Any = None
    opt: Any = None
    sched: Any = None
    steps: int = 0
    """Optimizer steps per epoch, the same on every rank."""
    amp_dtype: Any = None
    scaler: Any = None
    first_epoch: int = 0
    first_step: int = 0
    history: list = field(default_factory=list)
    step_log: list = field(default_factory=list)
    stepped: dict = field(default_factory=dict)
    stopped: str | None = None
    """Why training stopped before its last epoch, other than early stopping (``pruned``, ``privacy_budget``)."""

    @property
    def accountant(self):
        """The DP accountant (None without ``train.dp_epsilon``)."""
        return getattr(self.opt, "accountant", None)


def train_fn(spec: TrainSpec, splits: dict) -> dict:
    """Train on ``splits["train"]``, evaluate on validation each epoch and on test at the end
    (``splits``: each split's reader, ``gold_reader.GoldSplit`` or ``gold_files.TensorSplit``);
    rank 0's result, confirmed by every rank. A rank that fails writes its error to
    ``spec.failure_dir`` first: TorchDistributor itself only says that training failed."""
    try:
        state = _set_up_rank(spec)
        _build_model(state)
        start = time.perf_counter()
        with contextlib.closing(_train_rows(state, splits["train"])) as rows:  # stops the open reader at the end
            batches = _batches(state, rows)
            if spec.resume_from:
                _resume(state, batches)
            run_epochs(state, batches, splits["validation"])
        test = None if state.stopped == "pruned" else evaluate_split(state, splits["test"])
        return _finish(state, test, time.perf_counter() - start)
    except BaseException as exc:
        _report_failure(spec, exc)
        _leave_process_group()
        raise


def _leave_process_group() -> None:
    """Tear down a failed rank's process group, so that a process that goes on (a notebook's,
    ``--no-spark`` in a test) can train again; a rank that exits loses nothing by it."""
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        if dist.is_initialized():
            dist.destroy_process_group()


def _report_failure(spec: TrainSpec, exc: BaseException) -> None:
    from tokenlake.etl import storage

    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    with contextlib.suppress(Exception):  # the error itself is what matters: it still propagates
        storage.write_text(storage.join(spec.failure_dir, f"rank-{os.environ.get('RANK', '0')}.txt"), message)


def _set_up_rank(spec: TrainSpec) -> RankState:
    """Join the process group (collectives time out after ``collective_timeout_s``), seed the RNGs
    and let the steps reuse the memory they free (``training.allocator``)."""
    from datetime import timedelta

    import numpy as np
    import torch
    import torch.distributed as dist

    from tokenlake.training.allocator import keep_step_memory

    keep_step_memory()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cfg = spec.train
    device = _device(cfg.use_gpu)
    dist.init_process_group("nccl" if cfg.use_gpu else "gloo", timeout=timedelta(seconds=cfg.collective_timeout_s))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed + rank)  # for any library code that draws from it (checkpoints save its state)
    return RankState(spec=spec, rank=rank, world=world, device=device)


def _build_model(state: RankState) -> None:
    """The model (DDP-wrapped), its optimizer and schedule over every epoch's steps, mixed precision."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from tokenlake.training.data import steps_per_epoch
    from tokenlake.training.loop import make_optimizer, precision
    from tokenlake.training.model import build_model

    spec, cfg, device = state.spec, state.spec.train, state.device
    model = build_model(spec.task, cfg.model, vocab_size=spec.vocab_size, labels=spec.labels, max_len=spec.max_len,
                        dropout=cfg.dropout, top_layers=cfg.top_layers)  # fmt: skip
    state.model = model.to(device)
    if cfg.grad_checkpointing:
        state.model.gradient_checkpointing_enable()
    state.steps = steps_per_epoch(spec.train_rows, cfg.rank_batch * cfg.grad_accum_steps, state.world)
    state.opt, state.sched = make_optimizer(
        state.model,
        lr=cfg.peak_lr,
        weight_decay=cfg.weight_decay,
        total_steps=state.steps * cfg.epochs,
        warmup_ratio=cfg.warmup_ratio,
    )
    if spec.privacy:  # per-sample clipping and noise replace DDP's gradient averaging
        from tokenlake.training.privacy import make_private

        state.ddp, state.opt = make_private(state.model, state.opt, spec.privacy, cfg.rank_batch)
    else:
        state.ddp = DDP(state.model, device_ids=[device.index] if device.type == "cuda" else None)
    state.amp_dtype = precision(cfg.mixed_precision, device)
    state.scaler = torch.amp.GradScaler("cuda") if state.amp_dtype == torch.float16 else None


def _train_rows(state: RankState, split):
    """This rank's training rows, pass after pass over its shard, each pass shuffled by its own seed."""
    from tokenlake.training.data import passes

    cfg = state.spec.train

    def open_pass(n: int):
        return split.make_torch_dataloader(
            batch_size=cfg.rank_batch,
            num_epochs=1,
            cur_shard=state.rank,
            shard_count=state.world,
            workers_count=cfg.reader_workers,
            seed=cfg.seed + n,
            shuffle_rows=True,
            shuffle_window=4096,
        )

    return passes(open_pass, cfg.rank_batch)


def _batches(state: RankState, rows):
    from tokenlake.training.data import length_bucketed

    cfg = state.spec.train
    return length_bucketed(rows, cfg.bucket_batches, seed=cfg.seed + state.rank)


def _resume(state: RankState, batches) -> None:
    """Continue from ``spec.resume_from``: the data order is a function of the seeds alone, so
    replaying it up to the checkpoint puts the batches the killed run would have seen next in
    front of this one (reading is far faster than training: benchmarks' loader_vs_train); the
    model, optimizer, schedule and RNG states are restored after it."""
    from tokenlake.training import checkpoint

    spec = state.spec
    where = checkpoint.position(spec.resume_from)
    state.first_epoch, state.first_step = where["epoch"], where["step"]
    consumed = (state.first_epoch * state.steps + state.first_step) * spec.train.grad_accum_steps
    collections.deque(itertools.islice(batches, consumed), maxlen=0)
    where = checkpoint.load(
        spec.resume_from, rank=state.rank, device=state.device, model=state.model, opt=state.opt, sched=state.sched
    )
    state.history, state.step_log = where["history"], where["steps"]
    if state.accountant is not None:
        state.accountant.history = [tuple(h) for h in where["privacy_history"]]
    if state.rank == 0:
        print(f"resumed from {spec.resume_from}: epoch {state.first_epoch + 1}, step {state.first_step}", flush=True)


def _finish(state: RankState, test: dict, train_seconds: float) -> dict:
    """Rank 0 writes the model and its result, which every rank receives and confirms; then the
    process group is torn down."""
    import torch
    import torch.distributed as dist

    from tokenlake.etl.storage import local_dir, umask_modes

    if state.rank == 0:
        with local_dir(state.spec.model_dir) as out:
            state.model.save_pretrained(out)
            umask_modes(out)  # safetensors writes its file 0600: let the work dir's group read it
    result = [
        {
            "rank": state.rank,
            "world_size": state.world,
            "steps_per_epoch": state.steps,
            "history": state.history,
            "steps": state.step_log,
            "train_seconds": train_seconds,
            "first_step_at": state.stepped.get("at"),
            "test": test,
            "stopped": state.stopped,
            "privacy": state.spec.privacy.as_dict() if state.spec.privacy else None,
            "privacy_history": state.accountant.history if state.accountant is not None else None,
        }
    ]
    dist.broadcast_object_list(result, src=0)
    confirmed = torch.ones((), dtype=torch.int64, device=state.device)
    dist.all_reduce(confirmed)
    result[0]["ranks_confirmed"] = int(confirmed)
    # Free DDP's gloo threads before tearing the group down (a rank once deadlocked at exit).
    state.ddp = state.model = state.opt = state.sched = None
    gc.collect()
    dist.destroy_process_group()
    return result[0]
