"""Batches: Petastorm/pyarrow rows (fixed-length, zero-padded ``input_ids``) to model inputs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager


def steps_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Optimizer-independent step count that every rank can run: ranks never wait on each other
    because one shard ran dry (Petastorm shards are uneven; STACK.md)."""
    steps = rows // (batch_size * world_size)
    if steps < 1:
        raise ValueError(f"{rows} training rows are too few for batch size {batch_size} on {world_size} ranks")
    return steps


WIDTH_MULTIPLE = {"cuda": 8}
"""On these devices a batch's width is rounded up to a multiple of this: a GPU pays for every new
width the first time it sees it (kernel and plan selection), and multiples of 8 suit its matrix
units (on an H200, base at 256 samples a step went from 250-256k to 344-357k real tokens/s:
benchmarks/README.md "GPU"). A CPU pays for the padding instead, so there a batch keeps the width
of its longest row. ``real_token_fraction`` counts the rounding as padding."""


def to_model_inputs(batch: dict, device="cpu", multiple: int | None = None) -> dict:
    """Trim padding to the longest sequence in the batch (rounded up to a ``multiple``, by default
    ``WIDTH_MULTIPLE`` of the device's type), build the attention mask and the labels (the class,
    or for a causal LM the tokens themselves), cast to long."""
    import torch

    multiple = multiple or WIDTH_MULTIPLE.get(torch.device(device).type, 1)
    n_tokens = batch["n_tokens"].long()
    width = min(-(-int(n_tokens.max()) // multiple) * multiple, batch["input_ids"].shape[1])
    input_ids = batch["input_ids"][:, :width].long()
    mask = torch.arange(width).unsqueeze(0) < n_tokens.unsqueeze(1)
    inputs = {"input_ids": input_ids, "attention_mask": mask.long()}
    if "label" in batch:
        inputs["labels"] = batch["label"].long()
    else:  # causal LM: predict every real token; padding is ignored by the loss
        inputs["labels"] = input_ids.masked_fill(~mask, -100)
    return {k: v.to(device) for k, v in inputs.items()}


def length_bucketed(batches: Iterator[dict], pool: int, seed: int = 0) -> Iterator[dict]:
    """Similar lengths together: take ``pool`` batches, sort their rows by ``n_tokens``, cut
    batches of the same size again and yield them in random order. Rows and batch count are
    unchanged; ``to_model_inputs`` then trims each batch to a width close to all of its rows."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    while True:
        group = list(itertools.islice(batches, pool))
        if not group:
            return
        rows = {k: torch.cat([b[k] for b in group]) for k in group[0]}
        size = group[0]["n_tokens"].shape[0]
        order = torch.argsort(rows["n_tokens"], stable=True)
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        for j in torch.randperm(len(chunks), generator=generator).tolist():
            yield {k: v[chunks[j]] for k, v in rows.items()}


def rebatch(chunks: Iterator[dict], batch_size: int, *, window: int = 0, seed: int | None = None) -> Iterator[dict]:
    """Chunks of rows (dicts of equally long tensors, e.g. a reader's row groups) -> batches of
    ``batch_size`` rows, the last one possibly shorter. With a ``seed``, rows are shuffled in
    windows: rows are gathered until at least ``window`` have arrived, permuted by a generator of
    that seed and cut into batches; the rows short of a full batch join the next window. The order
    is a function of the chunks and the seed alone (no global RNG), and the work per row is a few
    tensor indexing operations, not Python per row."""
    import torch

    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    pending: list[dict] = []
    held = 0

    def cut(final: bool) -> Iterator[dict]:
        nonlocal pending, held
        rows = pending[0] if len(pending) == 1 else {k: torch.cat([c[k] for c in pending]) for k in pending[0]}
        if generator is not None:
            order = torch.randperm(held, generator=generator)
            rows = {k: v[order] for k, v in rows.items()}
        full = held if final else held - held % batch_size
        for i in range(0, full, batch_size):
            yield {k: v[i : i + batch_size] for k, v in rows.items()}
        pending = [{k: v[full:] for k, v in rows.items()}] if full < held else []
        held -= full

    for chunk in chunks:
        n = int(next(iter(chunk.values())).shape[0])
        if n == 0:
            continue
        pending.append(chunk)
        held += n
        if held >= max(window, batch_size):
            yield from cut(final=False)
    if held:
        yield from cut(final=True)


def passes(open_pass: Callable[[int], AbstractContextManager], batch_size: int) -> Iterator[dict]:
    """Endless batches of exactly ``batch_size`` rows from one-pass loaders: ``open_pass(n)`` opens
    pass n (seeded by n); a pass's last, partial batch is completed with the next pass's first rows.

    One reader per pass rather than one endless reader: Petastorm's ventilator reshuffles its row
    groups again each time it waits for room at an epoch boundary, so an endless reader's order
    depends on timing; a one-pass reader's order depends on its seed alone.
    """

    def pass_rows() -> Iterator[dict]:
        for n in itertools.count():
            rows = 0
            with open_pass(n) as loader:
                for batch in loader:
                    rows += int(batch["n_tokens"].shape[0])
                    yield batch
            if rows == 0:
                raise ValueError(f"pass {n} of the training data had no rows")

    return rebatch(pass_rows(), batch_size)
