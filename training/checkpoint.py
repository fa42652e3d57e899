"""Checkpoints that survive a kill: written to a temporary directory, then renamed into place, and
only then named by the ``latest`` pointer (itself replaced atomically). A checkpoint holds the
model, optimizer and scheduler states (rank 0), each rank's RNG states, and the position (epoch,
step within it, history so far) plus the data it was trained on. Loaded with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

KEEP = 2  # checkpoints kept besides the one being written


def latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    root = Path(root)
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.pt").is_file() and (path / "position.json").is_file() else None


def position(path: str | Path) -> dict:
    return json.loads((Path(path) / "position.json").read_text())


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


def save(root: str | Path, *, rank: int, barrier, model, opt, sched, where: dict) -> None:
    """Called by every rank at the same step; ``where`` is JSON (epoch, step, history, lineage)."""
    import torch

    root = Path(root)
    name = f"step-{where['global_step']:08d}"
    tmp = root / f".{name}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    torch.save(_rng_state(), tmp / f"rng-{rank}.pt")
    if rank == 0:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                   tmp / "state.pt")  # fmt: skip
        (tmp / "position.json").write_text(json.dumps(where))
    barrier()
    if rank == 0:
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer = root / "latest.tmp"
        pointer.write_text(name)
        os.replace(pointer, root / "latest")
        for old in sorted(p for p in root.glob("step-*") if p.name != name)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()


def load(path: str | Path, *, rank: int, model, opt, sched, device) -> dict:
    """Restore the states saved by ``save`` into ``model``/``opt``/``sched`` and this rank's RNGs;
    return the position."""
    import torch

    path = Path(path)
    state = torch.load(path / "state.pt", map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    rng = path / f"rng-{rank}.pt"
    if rng.is_file():  # a different world size restores the model but not the data order
        _set_rng_state(torch.load(rng, weights_only=True))
    return position(path)
