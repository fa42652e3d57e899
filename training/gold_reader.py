"""A split of a gold version read in place: Petastorm's batch reader over the version's own
Parquet files (no copy of the data is written), sharded by row group, the rows of other splits
dropped and ``input_ids`` zero-padded to ``max_len`` in the reader's transform.

Every Petastorm call of the project is in this module, so that the reader can be replaced in one
place (Petastorm pins pyarrow 12 and is no longer maintained: STACK.md).

Shards: Petastorm lists the row groups of the files (sorted by path and index:
``sort_petastorm_row_groups``) and gives rank r those at positions r, r + world, ... So the driver
can count, before any rank starts, how many rows of each split every rank will read
(``row_groups``, ``shard_rows``) and refuse a layout that leaves a rank without training rows.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from urllib.parse import urlparse

from tokenlake.etl.storage import S3_SCHEMES, filesystem, is_remote, parquet_file

SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group of a gold file and its rows per split."""

    path: str
    index: int
    rows: dict[str, int]


def local_path(url: str) -> str:
    """``file:/x``, ``file:///x`` or ``/x`` -> ``/x``; other schemes are not local."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return parsed.path
    raise ValueError(f"{url}: not a local file")


def reader_urls(files: tuple[str, ...] | list[str]) -> tuple[list[str], dict]:
    """What Petastorm's ``make_batch_reader`` is given for ``files``: ``file://`` URLs for local
    files; for S3, the URIs and the file system of ``etl.storage`` (endpoint, region; keys from the
    SDK's chain) wrapped as the legacy pyarrow file system Petastorm's pyarrow-12 dataset code
    needs (an fsspec one sends it down pyarrow's new dataset API, which it cannot use). Other
    schemes (``hdfs://``) Petastorm resolves itself."""
    if urlparse(files[0]).scheme in S3_SCHEMES:
        from pyarrow.filesystem import S3FSWrapper

        return list(files), {"filesystem": S3FSWrapper(filesystem(files[0])[0])}
    if is_remote(files[0]):
        return list(files), {}
    return [f"file://{local_path(f)}" for f in files], {}


def row_groups(files: list[str]) -> list[RowGroup]:
    """The row groups of ``files`` in Petastorm's shard order (by path, then index), with the rows
    of each split they hold (from the ``split`` column alone)."""
    import pyarrow.compute as pc

    groups = []
    for url in sorted(files):
        with parquet_file(url) as parquet:
            for i in range(parquet.num_row_groups):
                counts = pc.value_counts(parquet.read_row_group(i, columns=[SPLIT_COLUMN]).column(0))
                groups.append(RowGroup(url, i, {c["values"].as_py(): c["counts"].as_py() for c in counts}))
    return groups


def parquet_columns(url: str) -> list[str]:
    """The column names of the Parquet file at ``url`` (its footer alone)."""
    with parquet_file(url) as parquet:
        return parquet.schema_arrow.names


def shard_rows(groups: list[RowGroup], split: str, world: int) -> list[int]:
    """The rows of ``split`` each of ``world`` ranks reads (rank r: row groups r, r + world, ...)."""
    return [sum(g.rows.get(split, 0) for g in groups[rank::world]) for rank in range(world)]


def pad_rows(flat, n_tokens, width: int):
    """Token lists given as their concatenation ``flat`` and lengths ``n_tokens`` -> an int32
    ``[rows, width]`` matrix, zero-padded (and cut at ``width``)."""
    import numpy as np

    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    ids = np.zeros((len(n_tokens), width), dtype=np.int32)
    rows = np.repeat(np.arange(len(n_tokens)), n_tokens)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(n_tokens) - n_tokens, n_tokens)
    keep = cols < width
    ids[rows[keep], cols[keep]] = np.asarray(flat)[keep]
    return ids


def _pad_split(frame, *, split: str, max_len: int):
    """Petastorm's transform of one row group (a pandas frame): the rows of ``split``, padded."""
    import numpy as np
    import pandas as pd

    rows = frame[frame[SPLIT_COLUMN] == split]
    n_tokens = rows["n_tokens"].to_numpy()
    flat = np.concatenate(rows["input_ids"].to_list()) if len(rows) else np.zeros(0, dtype=np.int32)
    out = {
        "input_ids": list(pad_rows(flat, n_tokens, max_len)),
        "n_tokens": np.minimum(n_tokens, max_len).astype(np.int32),
    }
    if "label" in rows.columns:
        out["label"] = rows["label"].to_numpy()
    return pd.DataFrame(out)


@dataclass(frozen=True)
class GoldSplit:
    """What training reads of one split: ``len()`` and a one-pass ``make_torch_dataloader`` (the
    interface of ``gold_files.TensorSplit``). Plain data, so it pickles to every rank."""

    files: tuple[str, ...]
    split: str
    max_len: int
    labelled: bool
    rows_per_rank: tuple[int, ...]

    def __len__(self) -> int:
        return sum(self.rows_per_rank)

    @contextlib.contextmanager
    def make_torch_dataloader(self, *, batch_size: int, num_epochs: int = 1, seed: int | None = None,
                              shuffle_window: int = 0, **reader_kwargs):  # fmt: skip
        """A one-pass loader of torch batches over this split: the reader's row groups (padded in its
        transform) cut into batches by ``training.data.rebatch``, rows shuffled in windows of
        ``shuffle_window`` rows when seeded. ``seed`` and ``reader_kwargs`` go to Petastorm's
        ``make_batch_reader`` (``cur_shard``, ``shard_count``, ``workers_count``, ``shuffle_rows``,
        ...).

        Petastorm's own torch loaders are left out: ``DataLoader`` goes row by row (with a
        shuffling queue, ~10 ms of the training process per batch of 32, as much as a small
        model's step) and ``BatchedDataLoader``'s shuffling draws from torch's global RNG, which
        training seeds for the model, so the data order would not be the seed's alone."""
        import numpy as np
        import torch
        from petastorm import make_batch_reader
        from petastorm.transform import TransformSpec

        from tokenlake.training.data import rebatch

        if num_epochs != 1:
            raise ValueError("one pass per loader (training.data.passes chains them)")
        sort_petastorm_row_groups()
        slow_petastorm_polling()
        fields = ["input_ids", "n_tokens", SPLIT_COLUMN] + (["label"] if self.labelled else [])
        transform = TransformSpec(
            functools.partial(_pad_split, split=self.split, max_len=self.max_len),
            edit_fields=[("input_ids", np.int32, (self.max_len,), False), ("n_tokens", np.int32, (), False)],
            removed_fields=[SPLIT_COLUMN],
        )
        urls, where = reader_urls(self.files)
        reader = make_batch_reader(urls, schema_fields=fields, num_epochs=1, transform_spec=transform, seed=seed,
                                   **where, **reader_kwargs)  # fmt: skip
        # the reader's arrays are read-only views of Arrow buffers: a writable copy for torch
        chunks = ({k: torch.from_numpy(np.require(v, requirements="W")) for k, v in group._asdict().items()}
                  for group in reader)  # fmt: skip
        try:
            yield rebatch(chunks, batch_size, window=shuffle_window, seed=seed if shuffle_window else None)
        finally:
            reader.stop()
            reader.join()


def sort_petastorm_row_groups() -> None:
    """Make a rank's shard and its seeded order name the same row groups in every process.

    Petastorm 0.12 lists files that have no summary metadata (gold's) in the order pyarrow's
    threaded listing returns, so row group i is a different file from one process to the next.
    Sort them by path and row group, as its summary-metadata code path does (and as
    ``row_groups`` counts them).
    """
    from petastorm.etl import dataset_metadata

    listed = dataset_metadata._split_row_groups_from_footers
    if hasattr(listed, "__wrapped__"):  # already sorted
        return

    @functools.wraps(listed)
    def by_path(dataset):
        return sorted(listed(dataset), key=lambda piece: (piece.path, piece.row_group))

    dataset_metadata._split_row_groups_from_footers = by_path


POLL_S = 0.05
"""How long Petastorm's reader threads wait on an empty queue before they look for a stop again."""


def slow_petastorm_polling() -> None:
    """Petastorm's reader threads wait on their queues in slices of 1 ms
    (``thread_pool.IO_TIMEOUT_INTERVAL_S``): once a rank's row groups are read, its worker thread
    wakes 1,000 times a second for the rest of the pass, taking the GIL from the training loop
    each time. A wait ends as soon as an item arrives, whatever the slice, so a longer one only
    delays ``stop()`` (by up to ``POLL_S``)."""
    from petastorm.workers_pool import thread_pool

    thread_pool.IO_TIMEOUT_INTERVAL_S = POLL_S
