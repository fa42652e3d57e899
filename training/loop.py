"""The training loop in plain PyTorch: no Spark, no process group needed to test it.

``fit_epoch`` runs a fixed number of optimizer steps over any iterator of batches; ``evaluate``
returns sums (loss, confusion matrix) that ranks can all-reduce before ``metrics`` turns them
into accuracy, macro-F1 and mean loss.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch

from tokenlake.training.data import to_model_inputs


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay matrices, never biases or norm/embedding-scale vectors (ndim < 2)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, total_steps: int, warmup_ratio: float):
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    warmup = int(total_steps * warmup_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))
    return opt, sched


def precision(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mixed_precision`` on ``device`` (None: full fp32).

    ``auto`` picks bf16 only on CUDA that supports it: CPUs without bf16 units run it ~29x slower
    (STACK.md)."""
    if mode == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("mixed_precision=fp16 needs a CUDA device")
    return {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def fit_epoch(
    model: torch.nn.Module,
    batches: Iterator[dict],
    *,
    steps: int,
    opt,
    sched,
    device: torch.device,
    grad_accum_steps: int = 1,
    max_grad_norm: float = 1.0,
    amp_dtype: torch.dtype | None = None,
    scaler=None,
    on_step: Callable[[int, dict], None] | None = None,
    start_step: int = 0,
    after_step: Callable[[int], None] | None = None,
) -> dict:
    """Run optimizer steps ``start_step`` to ``steps`` - 1 (each ``grad_accum_steps`` micro-batches;
    ``after_step`` runs on every rank after each) and return the mean loss, samples, real tokens,
    seconds and the real (non-pad) share of the batches' slots."""
    model.train()
    total_loss, samples, tokens, slots, start = 0.0, 0, 0, 0, time.perf_counter()
    for step in range(start_step, steps):
        step_loss, step_samples, step_tokens, step_start = 0.0, 0, 0, time.perf_counter()
        for micro in range(grad_accum_steps):
            inputs = to_model_inputs(next(batches), device)
            sync = micro == grad_accum_steps - 1 or not hasattr(model, "no_sync")
            with (
                contextlib.nullcontext() if sync else model.no_sync(),
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                loss = model(**inputs).loss / grad_accum_steps
            (scaler.scale(loss) if scaler else loss).backward()
            step_loss += loss.item()
            step_samples += inputs["input_ids"].shape[0]
            step_tokens += int(inputs["attention_mask"].sum())
            slots += inputs["attention_mask"].numel()
        if scaler:
            scaler.unscale_(opt)
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        lr = sched.get_last_lr()[0]
        sched.step()
        total_loss, samples, tokens = total_loss + step_loss, samples + step_samples, tokens + step_tokens
        if on_step:
            step_seconds = time.perf_counter() - step_start
            on_step(
                step,
                {
                    "loss": total_loss / (step + 1 - start_step),
                    "step_loss": step_loss,
                    "lr": lr,
                    "samples_per_s": samples / (time.perf_counter() - start),
                    "step_samples_per_s": step_samples / step_seconds,
                    "step_tokens_per_s": step_tokens / step_seconds,
                },
            )
        if after_step:
            after_step(step)
    seconds = time.perf_counter() - start
    return {
        "loss": total_loss / max(steps - start_step, 1),
        "samples": samples,
        "tokens": tokens,
        "seconds": seconds,
        "real_token_fraction": tokens / max(slots, 1),
    }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches, *, num_labels: int, device: torch.device, amp_dtype: torch.dtype | None = None
) -> dict:
    """Sums over ``batches``: ``loss_sum``, ``count`` and a ``confusion`` matrix [true, predicted]."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64)
    confusion = torch.zeros(num_labels, num_labels, dtype=torch.int64)
    for batch in batches:
        inputs = to_model_inputs(batch, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(**inputs)
        labels = inputs["labels"].cpu()
        loss_sum += torch.nn.functional.cross_entropy(out.logits.float(), inputs["labels"], reduction="sum").cpu()
        confusion += torch.bincount(
            labels * num_labels + out.logits.argmax(-1).cpu(), minlength=num_labels * num_labels
        ).reshape(num_labels, num_labels)
    return {"loss_sum": loss_sum, "count": confusion.sum(), "confusion": confusion}


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, batches, *, device: torch.device, amp_dtype: torch.dtype | None = None) -> dict:
    """Sums over ``batches`` for a causal LM: ``loss_sum`` over predicted tokens and their ``count``."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64)
    count = torch.zeros((), dtype=torch.int64)
    for batch in batches:
        inputs = to_model_inputs(batch, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        targets = inputs["labels"][:, 1:]
        loss_sum += torch.nn.functional.cross_entropy(
            logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum"
        ).cpu()
        count += (targets != -100).sum().cpu()
    return {"loss_sum": loss_sum, "count": count}


def lm_metrics(sums: dict) -> dict:
    """Mean token loss and perplexity from ``evaluate_lm`` sums."""
    count = int(sums["count"])
    if count == 0:
        raise ValueError("evaluation saw no tokens")
    loss = float(sums["loss_sum"]) / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "count": count}


def metrics(sums: dict) -> dict:
    """Accuracy, macro-F1 (over labels that occur or are predicted) and mean loss from ``evaluate`` sums."""
    confusion = sums["confusion"].double()
    count = float(confusion.sum())
    if count == 0:
        raise ValueError("evaluation saw no rows")
    tp = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    present = (support + predicted) > 0
    return {
        "accuracy": float(tp.sum() / count),
        "macro_f1": float(f1[present].mean()),
        "loss": float(sums["loss_sum"]) / count,
        "count": int(count),
    }


def stop_early(history: list[dict], patience: int, min_delta: float = 0.0) -> bool:
    """True once validation loss has not improved on its best by more than ``min_delta`` for
    ``patience`` epochs (0: never). A function of the epoch history alone, so a resumed run
    decides as the uninterrupted one would have."""
    losses = [h["val_loss"] for h in history]
    if patience <= 0 or not losses:
        return False
    best = 0
    for i, loss in enumerate(losses):
        if loss < losses[best] - min_delta:
            best = i
    return len(losses) - 1 - best >= patience
