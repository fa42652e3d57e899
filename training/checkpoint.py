"""Checkpoints that survive a kill, in a local directory or on object storage (``etl.storage``):
a checkpoint's files are written under ``step-N/``, and only then named by the ``latest``
pointer, which is replaced atomically (a rename locally, one PUT on an object store): a kill at
any moment leaves ``latest`` naming a complete checkpoint. A checkpoint holds the model,
optimizer and scheduler states (rank 0), each rank's RNG states, and the position (epoch, step
within it, history so far) plus the data it was trained on. Loaded with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from tokenlake.etl import storage

KEEP = 2  # checkpoints kept besides the one being written


def latest(root: str | Path) -> str | None:
    """The newest complete checkpoint under ``root``, or None."""
    pointer = storage.join(root, "latest")
    if not storage.is_file(pointer):
        return None
    path = storage.join(root, storage.read_text(pointer).strip())
    done = all(storage.is_file(storage.join(path, name)) for name in ("state.pt", "position.json"))
    return path if done else None


def position(path: str | Path) -> dict:
    return json.loads(storage.read_text(storage.join(path, "position.json")))


def missing_rng_states(path: str | Path, world: int) -> list[int]:
    """The ranks of a world of ``world`` processes whose RNG states ``path`` lacks: without them a
    resumed run would draw other dropout masks and batch orders than the one it continues."""
    return [rank for rank in range(world) if not storage.is_file(storage.join(path, f"rng-{rank}.pt"))]


def _rng_state() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
    }  # fmt: skip


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))


def _save_tensors(obj, where: str) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    storage.write_bytes(where, buffer.getvalue())


def _load_tensors(where: str, device=None):
    import torch

    return torch.load(io.BytesIO(storage.read_bytes(where)), map_location=device, weights_only=True)


def save(root: str | Path, *, rank: int, barrier, model, opt, sched, where: dict) -> None:
    """Called by every rank at the same step; ``where`` is JSON (epoch, step, history, lineage)."""
    name = f"step-{where['global_step']:08d}"
    path = storage.join(root, name)
    if rank == 0:
        storage.remove(path)  # what a killed run left of this step, never named by ``latest``
    barrier()
    _save_tensors(_rng_state(), storage.join(path, f"rng-{rank}.pt"))
    if rank == 0:
        _save_tensors({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                      storage.join(path, "state.pt"))  # fmt: skip
        storage.write_text(storage.join(path, "position.json"), json.dumps(where))
    barrier()
    if rank == 0:
        storage.write_text(storage.join(root, "latest"), name)
        for old in [n for n in storage.names(root) if n.startswith("step-") and n != name][:-KEEP]:
            storage.remove(storage.join(root, old))
    barrier()


def load(path: str | Path, *, rank: int, model, opt, sched, device) -> dict:
    """Restore the states saved by ``save`` into ``model``/``opt``/``sched`` and this rank's RNGs;
    return the position."""
    state = _load_tensors(storage.join(path, "state.pt"), device)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    rng = storage.join(path, f"rng-{rank}.pt")
    if not storage.is_file(rng):  # resume_point refuses such a checkpoint before any rank starts
        raise FileNotFoundError(f"{path} has no RNG state for rank {rank}: it cannot be resumed exactly")
    _set_rng_state(_load_tensors(rng))
    return position(path)
