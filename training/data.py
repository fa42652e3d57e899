"""Batches: Petastorm/pyarrow rows (fixed-length, zero-padded ``input_ids``) to model inputs."""

from __future__ import annotations


def steps_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Optimizer-independent step count that every rank can run: ranks never wait on each other
    because one shard ran dry (Petastorm shards are uneven; STACK.md)."""
    steps = rows // (batch_size * world_size)
    if steps < 1:
        raise ValueError(f"{rows} training rows are too few for batch size {batch_size} on {world_size} ranks")
    return steps


def to_model_inputs(batch: dict, device="cpu") -> dict:
    """Trim padding to the longest sequence in the batch, build the attention mask, cast to long."""
    import torch

    n_tokens = batch["n_tokens"].long()
    width = int(n_tokens.max())
    input_ids = batch["input_ids"][:, :width].long()
    mask = torch.arange(width).unsqueeze(0) < n_tokens.unsqueeze(1)
    inputs = {"input_ids": input_ids, "attention_mask": mask.long()}
    if "label" in batch:
        inputs["labels"] = batch["label"].long()
    return {k: v.to(device) for k, v in inputs.items()}
