"""The gold table without Spark: a Delta version's Parquet files, from its JSON commit log, read
into the fixed-length tensors the training loop takes (for GPU machines without Java)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from urllib.parse import unquote

from tokenlake.etl import storage
from tokenlake.etl.lake import COMMIT_FILE, commit_file, commit_user_metadata


class LogIncomplete(ValueError):
    """The JSON commits do not go back to version 0 (Delta cleaned them up after a checkpoint)."""


def _commits(table: str | Path) -> list[tuple[int, str]]:
    """``(version, path)`` of every JSON commit of ``table``, local or at a URI."""
    log = storage.join(table, "_delta_log")
    versions = sorted(int(n[:-5]) for n in storage.names(log) if COMMIT_FILE.fullmatch(n))
    if not versions:
        raise FileNotFoundError(f"{table} is not a Delta table (no {log}/*.json)")
    if versions != list(range(len(versions))):
        raise LogIncomplete(f"{table}: commit log is not complete from version 0 (log cleaned up?); read it with Spark")
    return [(v, storage.join(log, commit_file(v))) for v in versions]


def _actions(table: str | Path, version: int | None):
    commits = _commits(table)
    last = len(commits) - 1
    if version is not None and not 0 <= version <= last:
        raise ValueError(f"{table} has versions 0..{last}, not {version}")
    version = last if version is None else version
    for _, commit in commits[: version + 1]:
        for line in storage.read_text(commit).splitlines():
            yield json.loads(line)


def latest_version(table: str | Path) -> int:
    return len(_commits(table)) - 1


def commit_metadata(table: str | Path, version: int) -> dict:
    """The ``userMetadata`` written with ``version`` (what ``etl.lake.commit_metadata`` reads with
    Spark), from that version's commit file alone: one read, however long the log (on an object
    store each earlier commit would be a request of its own)."""
    commit = storage.join(table, "_delta_log", commit_file(version))
    if not storage.exists(commit):
        raise ValueError(f"Delta table {table} has no version {version} (no {commit})")
    return commit_user_metadata(storage.read_text(commit))


def delta_files(table: str | Path, version: int | None = None, *, check_sizes: bool = False) -> list[str]:
    """The data files of ``table`` at ``version`` (default: the latest), replaying its commits.
    ``check_sizes``: every file must still have the size its commit recorded (a file replaced
    behind Delta's back usually does not)."""
    files: dict[str, int] = {}
    for action in _actions(table, version):
        if "add" in action:
            files[unquote(action["add"]["path"])] = action["add"].get("size", -1)
        elif "remove" in action:
            files.pop(unquote(action["remove"]["path"]), None)
    paths = [storage.join(table, f) for f in files]
    if check_sizes:
        for path, size in zip(paths, files.values(), strict=True):
            fs, inner = storage.filesystem(path)
            actual = fs.size(inner) if fs.isfile(inner) else None
            if actual != size:
                raise ValueError(f"{path} is {actual} bytes, its Delta commit recorded {size}: changed outside Delta")
    return paths


def first_rows(table: str | Path, version: int | None, *, split: str, columns: list[str], limit: int) -> dict:
    """``columns`` of the first ``limit`` rows of ``split`` in the Delta table at ``version``, in
    commit order, as Python lists: row groups are read one batch at a time and reading stops once
    enough rows are in, so the cost does not grow with the table."""
    import pyarrow.compute as pc

    out: dict[str, list] = {c: [] for c in columns}
    for path in delta_files(table, version):
        with storage.parquet_file(path) as parquet:
            for batch in parquet.iter_batches(columns=["split", *columns], batch_size=4096):
                rows = batch.filter(pc.equal(batch.column("split"), split))
                for c in columns:
                    out[c] += rows.column(c).to_pylist()
                if len(out[columns[0]]) >= limit:
                    return {c: v[:limit] for c, v in out.items()}
    return out


class TensorSplit:
    """One split in memory, offering what training uses of a ``gold_reader.GoldSplit``: ``len()`` and
    a one-pass ``make_torch_dataloader`` (sharded by rank, shuffled when seeded)."""

    def __init__(self, data: dict):
        self.data = data

    def __len__(self) -> int:
        return int(self.data["n_tokens"].shape[0])

    @contextlib.contextmanager
    def make_torch_dataloader(self, *, batch_size, num_epochs=1, cur_shard=0, shard_count=1, seed=None, **_):
        import torch

        if num_epochs != 1:
            raise ValueError("one pass per loader (training.data.passes chains them)")
        rows = torch.arange(cur_shard, len(self), shard_count)
        if seed is not None:
            rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]
        yield ({k: v[rows[i : i + batch_size]] for k, v in self.data.items()} for i in range(0, len(rows), batch_size))


def load_gold(table: str | Path, version: int | None = None, *, split: str | None = None, max_len: int | None = None):
    """``{"input_ids": int32 [rows, max_len] zero-padded, "n_tokens", "label"?}`` as torch tensors."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import torch

    from tokenlake.training.gold_reader import pad_rows

    tables = []
    for path in delta_files(table, version, check_sizes=True):
        with storage.parquet_file(path) as parquet:
            tables.append(parquet.read())
    data = pa.concat_tables(tables) if tables else None
    if data is None or data.num_rows == 0:
        raise ValueError(f"{table}: no rows")
    if split is not None:
        data = data.filter(pc.equal(data["split"], split))
    n_tokens = data["n_tokens"].to_numpy()
    width = max_len or int(n_tokens.max())
    ids = pad_rows(pc.list_flatten(data["input_ids"]).to_numpy(), n_tokens, width)
    out = {
        "input_ids": torch.from_numpy(ids),
        "n_tokens": torch.from_numpy(np.minimum(n_tokens, width).astype(np.int32)),
    }
    if "label" in data.column_names:
        out["label"] = torch.from_numpy(data["label"].to_numpy().astype(np.int64))
    return out
