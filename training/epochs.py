"""The epochs of one rank's training: a fixed number of steps each, checkpointed every
``checkpoint_steps`` and at the end, then validation, and the rules that end training early
(early stopping on the all-reduced history, the DP budget, an Optuna trial's pruning). Every rank
takes the same decisions from the same all-reduced or broadcast values, so no rank waits alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenlake.etl.config import Task
from tokenlake.training.progress import rank0_steps

if TYPE_CHECKING:
    from tokenlake.training.distributed import RankState

EVAL_KEYS = {Task.CLASSIFICATION: ("loss", "accuracy", "macro_f1"), Task.CAUSAL_LM: ("loss", "perplexity")}


def evaluate_split(state: RankState, split) -> dict:
    """Every rank evaluates its shard; the sums are all-reduced once (no per-batch collective, so
    uneven shards cannot hang), then turned into metrics."""
    import torch.distributed as dist

    from tokenlake.training.loop import evaluate, evaluate_lm, lm_metrics, metrics

    spec, device = state.spec, state.device
    with split.make_torch_dataloader(
        batch_size=spec.train.eval_batch_size,
        num_epochs=1,
        cur_shard=state.rank,
        shard_count=state.world,
        workers_count=spec.train.reader_workers,
        shuffle_row_groups=False,
    ) as loader:
        if spec.task == Task.CAUSAL_LM:
            sums = evaluate_lm(state.model, loader, device=device, amp_dtype=state.amp_dtype)
        else:
            sums = evaluate(state.model, loader, num_labels=len(spec.labels), device=device, amp_dtype=state.amp_dtype)
    for key, value in sums.items():
        on_device = value.to(device)
        dist.all_reduce(on_device)
        sums[key] = on_device.cpu()
    if spec.task == Task.CAUSAL_LM:
        return lm_metrics(sums)
    return {**metrics(sums), "confusion": sums["confusion"].tolist()}


def run_epochs(state: RankState, batches, validation) -> None:
    """The epochs left: a fixed number of steps each (checkpointed every ``checkpoint_steps`` and
    at the end), validation, and early stopping on the all-reduced history."""
    from tokenlake.training.loop import fit_epoch, stop_early

    cfg, world, steps = state.spec.train, state.world, state.steps
    every = cfg.checkpoint_steps
    for epoch in range(state.first_epoch, cfg.epochs):
        if stop_early(state.history, cfg.early_stopping_patience, cfg.early_stopping_min_delta):
            break  # every rank holds the same all-reduced history, so every rank stops here
        if not _within_budget(state, steps - (state.first_step if epoch == state.first_epoch else 0)):
            break

        def after_step(step: int, epoch: int = epoch) -> None:
            if every and (epoch * steps + step + 1) % every == 0:
                _save(state, epoch, step + 1)

        stats = fit_epoch(
            state.ddp,
            batches,
            steps=steps,
            opt=state.opt,
            sched=state.sched,
            device=state.device,
            grad_accum_steps=cfg.grad_accum_steps,
            max_grad_norm=0 if state.spec.privacy else cfg.max_grad_norm,  # DP clips each sample's instead
            amp_dtype=state.amp_dtype,
            scaler=state.scaler,
            on_step=rank0_steps(epoch, cfg.epochs, steps, world, state.step_log, state.stepped)
            if state.rank == 0
            else None,
            start_step=state.first_step if epoch == state.first_epoch else 0,
            after_step=after_step,
        )
        val = evaluate_split(state, validation)
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": stats["loss"],
                "lr": state.sched.get_last_lr()[0],
                "samples_per_s": stats["samples"] * world / stats["seconds"],
                "tokens_per_s": stats["tokens"] * world / stats["seconds"],
                "real_token_fraction": stats["real_token_fraction"],
                **{f"val_{k}": val[k] for k in EVAL_KEYS[state.spec.task]},
            }
        )
        if state.rank == 0:
            print(f"epoch {epoch + 1}/{cfg.epochs} {state.history[-1]}", flush=True)
        _save(state, epoch + 1, 0)
        if state.spec.trial and _pruned(state, epoch):
            break


def _within_budget(state: RankState, next_steps: int) -> bool:
    """Under DP, whether the next epoch's steps stay within the target ε (the same answer on every
    rank: each holds the same accountant); if not, training stops here, saying so."""
    from tokenlake.training.privacy import PrivacyBudgetSpent, check_budget

    if state.accountant is None:
        return True
    try:
        check_budget(state.spec.privacy, state.accountant.history, next_steps)
    except PrivacyBudgetSpent as exc:
        state.stopped = "privacy_budget"
        if state.rank == 0:
            print(f"training stops: {exc}", flush=True)
        return False
    return True


def _pruned(state: RankState, epoch: int) -> bool:
    """Rank 0 reports the epoch's validation loss to the Optuna trial and asks whether to prune;
    every rank gets the answer."""
    import torch.distributed as dist

    answer = [False]
    if state.rank == 0:
        from tokenlake.training.tuning import report_epoch

        answer[0] = report_epoch(state.spec.trial, epoch + 1, state.history[-1]["val_loss"])
    dist.broadcast_object_list(answer, src=0)
    if answer[0]:
        state.stopped = "pruned"
        if state.rank == 0:
            print(f"trial pruned after epoch {epoch + 1}", flush=True)
    return answer[0]


def _save(state: RankState, epoch: int, step: int) -> None:
    """Every rank's part of the checkpoint at (``epoch``, ``step``)."""
    import torch.distributed as dist

    from tokenlake.training import checkpoint

    spec = state.spec
    where = {"epoch": epoch, "step": step, "global_step": epoch * state.steps + step, "history": state.history,
             "steps": state.step_log, "lineage": spec.lineage, "mlflow_run_id": spec.mlflow_run_id}  # fmt: skip
    if state.accountant is not None:
        where["privacy_history"] = state.accountant.history
    checkpoint.save(spec.checkpoint_dir, rank=state.rank, barrier=dist.barrier, where=where,
                    model=state.model, opt=state.opt, sched=state.sched)  # fmt: skip
