"""The gold table without Spark: a Delta version's Parquet files, from its JSON commit log, read
into the fixed-length tensors the training loop takes (for GPU machines without Java)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote


def delta_files(table: str | Path, version: int | None = None) -> list[Path]:
    """The data files of ``table`` at ``version`` (default: the latest), replaying its commits."""
    log = Path(table) / "_delta_log"
    commits = sorted(log.glob("[0-9]*.json"))
    if not commits:
        raise FileNotFoundError(f"{table} is not a Delta table (no {log}/*.json)")
    versions = [int(c.stem) for c in commits]
    if versions != list(range(len(versions))):
        raise ValueError(f"{table}: commit log is not complete from version 0 (log cleaned up?); read it with Spark")
    if version is not None and not 0 <= version <= versions[-1]:
        raise ValueError(f"{table} has versions 0..{versions[-1]}, not {version}")
    files: dict[str, None] = {}
    for commit in commits[: (versions[-1] if version is None else version) + 1]:
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[unquote(action["add"]["path"])] = None
            elif "remove" in action:
                files.pop(unquote(action["remove"]["path"]), None)
    return [Path(table) / f for f in files]


def load_gold(table: str | Path, version: int | None = None, *, split: str | None = None, max_len: int | None = None):
    """``{"input_ids": int32 [rows, max_len] zero-padded, "n_tokens", "label"?}`` as torch tensors."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    tables = [pq.read_table(f) for f in delta_files(table, version)]
    data = pa.concat_tables(tables) if tables else None
    if data is None or data.num_rows == 0:
        raise ValueError(f"{table}: no rows")
    if split is not None:
        data = data.filter(pc.equal(data["split"], split))
    n_tokens = data["n_tokens"].to_numpy()
    width = max_len or int(n_tokens.max())
    ids = np.zeros((data.num_rows, width), dtype=np.int32)
    flat = pc.list_flatten(data["input_ids"]).to_numpy()
    rows = np.repeat(np.arange(data.num_rows), n_tokens)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(n_tokens) - n_tokens, n_tokens)
    keep = cols < width
    ids[rows[keep], cols[keep]] = flat[keep]
    out = {
        "input_ids": torch.from_numpy(ids),
        "n_tokens": torch.from_numpy(np.minimum(n_tokens, width).astype(np.int32)),
    }
    if "label" in data.column_names:
        out["label"] = torch.from_numpy(data["label"].to_numpy().astype(np.int64))
    return out
