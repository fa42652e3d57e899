"""Checkpoints: atomic, complete or absent, restored exactly (weights_only loads)."""

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenlake.training import checkpoint
from tokenlake.training.loop import make_optimizer


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def _step(model, opt, sched):
    loss = model(torch.randn(16, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    sched.step()


def test_save_then_load_restores_model_optimizer_schedule_and_rngs(tmp_path):
    model = _model()
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.01, total_steps=20, warmup_ratio=0.2)
    for _ in range(3):
        _step(model, opt, sched)
    where = {"epoch": 0, "step": 3, "global_step": 3, "history": [], "steps": [], "lineage": {"gold_version": 1}}
    checkpoint.save(tmp_path, rank=0, barrier=lambda: None, model=model, opt=opt, sched=sched, where=where)
    expected = (torch.rand(3), random.random(), np.random.rand())  # what the RNGs give next
    _step(model, opt, sched)  # the original moves on; the restored copy must not have seen this

    found = checkpoint.latest(tmp_path)
    assert Path(found).name == "step-00000003" and not list(tmp_path.glob(".*.tmp"))
    copy = _model()
    copy_opt, copy_sched = make_optimizer(copy, lr=1e-2, weight_decay=0.01, total_steps=20, warmup_ratio=0.2)
    position = checkpoint.load(found, rank=0, model=copy, opt=copy_opt, sched=copy_sched, device="cpu")
    assert position == where
    assert (torch.rand(3).tolist(), random.random(), np.random.rand()) == (expected[0].tolist(), *expected[1:])
    assert copy_sched.last_epoch == 3 and sched.last_epoch == 4
    assert all(int(s["step"]) == 3 for s in copy_opt.state_dict()["state"].values())
    # one more identical step on the restored copy reproduces the original's parameters
    reference = _model()
    ref_opt, ref_sched = make_optimizer(reference, lr=1e-2, weight_decay=0.01, total_steps=20, warmup_ratio=0.2)
    for _ in range(3):
        _step(reference, ref_opt, ref_sched)
    torch.manual_seed(123)
    _step(reference, ref_opt, ref_sched)
    torch.manual_seed(123)
    _step(copy, copy_opt, copy_sched)
    for a, b in zip(reference.parameters(), copy.parameters(), strict=True):
        assert torch.allclose(a, b)


def test_only_complete_checkpoints_count_and_old_ones_are_pruned(tmp_path):
    model = _model()
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.0, total_steps=10, warmup_ratio=0.0)
    assert checkpoint.latest(tmp_path) is None
    for step in (2, 4, 6, 8):
        where = {"epoch": 0, "step": step, "global_step": step, "history": [], "steps": [], "lineage": {}}
        checkpoint.save(tmp_path, rank=0, barrier=lambda: None, model=model, opt=opt, sched=sched, where=where)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000004", "step-00000006", "step-00000008"]
    # a kill before the pointer moved leaves a partial step that nothing points at ...
    (tmp_path / "step-00000010").mkdir()
    (tmp_path / "step-00000010" / "rng-0.pt").write_bytes(b"partial")
    assert Path(checkpoint.latest(tmp_path)).name == "step-00000008"
    # ... and the next save of that step starts it afresh
    where = {"epoch": 0, "step": 10, "global_step": 10, "history": [], "steps": [], "lineage": {}}
    checkpoint.save(tmp_path, rank=0, barrier=lambda: None, model=model, opt=opt, sched=sched, where=where)
    assert Path(checkpoint.latest(tmp_path)).name == "step-00000010"
    assert checkpoint.position(checkpoint.latest(tmp_path)) == where
    (Path(checkpoint.latest(tmp_path)) / "state.pt").unlink()  # an incomplete checkpoint is not offered
    assert checkpoint.latest(tmp_path) is None


def test_a_checkpoint_without_a_ranks_rng_state_is_refused_not_resumed_inexactly(tmp_path):
    from tokenlake.training.config import TrainConfig
    from tokenlake.training.launch import TrainingFailed, resume_point

    cfg, gold = TrainConfig(resume=True, num_processes=2), {"path": "gold", "version": 3}
    model = _model()
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.0, total_steps=10, warmup_ratio=0.0)
    where = {"epoch": 0, "step": 2, "global_step": 2, "history": [], "steps": [], "lineage": cfg.lineage(gold)}
    for rank in (0, 1):  # rank 0 clears the step's directory first (a barrier orders it so in a run)
        checkpoint.save(tmp_path, rank=rank, barrier=lambda: None, model=model, opt=opt, sched=sched, where=where)
    found = checkpoint.latest(tmp_path)
    assert resume_point(str(tmp_path), cfg, gold) == found
    (Path(found) / "rng-1.pt").unlink()
    with pytest.raises(TrainingFailed, match=r"lacks the RNG state of rank\(s\) \[1\]"):
        resume_point(str(tmp_path), cfg, gold)
    with pytest.raises(FileNotFoundError, match="no RNG state for rank 1"):
        checkpoint.load(found, rank=1, model=model, opt=opt, sched=sched, device="cpu")


def test_a_resume_whose_mlflow_run_is_gone_says_so_and_links_the_new_run_to_it(tmp_path, caplog):
    """The checkpoint names a run the tracking store does not hold (another store, or deleted):
    the resume goes on in a new run tagged with the old one's id, and the log says so."""
    from dataclasses import replace

    import mlflow

    from tokenlake.etl.storage import WorkDir
    from tokenlake.jobs.config import PipelineConfig
    from tokenlake.jobs.mlflow_run import mlflow_run

    model = _model()
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.0, total_steps=10, warmup_ratio=0.0)
    gone = "0123456789abcdef0123456789abcdef"
    where = {"epoch": 0, "step": 2, "global_step": 2, "history": [], "steps": [], "lineage": {}, "mlflow_run_id": gone}
    checkpoint.save(tmp_path / "checkpoints", rank=0, barrier=lambda: None, model=model, opt=opt, sched=sched,
                    where=where)  # fmt: skip
    cfg = PipelineConfig()
    cfg = replace(cfg, train=replace(cfg.train, resume=True))
    with mlflow_run(f"sqlite:///{tmp_path / 'mlflow.db'}", WorkDir.of(tmp_path), None, cfg) as run:
        tags = mlflow.get_run(run.info.run_id).data.tags
    assert run.info.run_id != gone and tags["resumed_from_run"] == gone and tags["resumed"] == "true"
    assert f"the MLflow run {gone} that wrote the checkpoint is not in the tracking store" in caplog.text
    assert f"continues in a new run {run.info.run_id}" in caplog.text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_inside_a_run_ends_it_killed_with_the_stage_and_the_checkpoint(tmp_path, signum):
    import mlflow

    from tokenlake.etl.storage import WorkDir
    from tokenlake.jobs.config import PipelineConfig
    from tokenlake.jobs.mlflow_run import Stopped, mlflow_run, set_stage, stop_on_signals

    model = _model()
    opt, sched = make_optimizer(model, lr=1e-2, weight_decay=0.0, total_steps=10, warmup_ratio=0.0)
    where = {"epoch": 0, "step": 2, "global_step": 2, "history": [], "steps": [], "lineage": {}}
    checkpoint.save(tmp_path / "checkpoints", rank=0, barrier=lambda: None, model=model, opt=opt, sched=sched,
                    where=where)  # fmt: skip
    previous = signal.getsignal(signum)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with (
        pytest.raises(Stopped) as stopped,
        stop_on_signals(),
        mlflow_run(store, WorkDir.of(tmp_path), None, PipelineConfig()) as run,
    ):
        set_stage("train")
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the signal arrives before this ends
    assert signal.getsignal(signum) is previous  # the handlers are put back
    finished = mlflow.get_run(run.info.run_id)
    assert finished.info.status == "KILLED" and finished.data.tags["stopped_by"] == signal.Signals(signum).name
    assert stopped.value.signum == signum and stopped.value.where == [
        f"during train; MLflow run {run.info.run_id} is marked KILLED",
        f"the latest checkpoint is {checkpoint.latest(tmp_path / 'checkpoints')} (--resume continues from it)",
    ]
