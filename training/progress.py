"""What rank 0 shows and keeps while it trains: a progress line per step (a redrawn bar on a
terminal, a plain line every ~10 % of an epoch otherwise) and a thinned per-step log for MLflow."""

from __future__ import annotations

import time


def progress_printer(epoch: int, epochs: int, steps: int, world: int, stream=None):
    """Rank 0's progress: a redrawn bar on a terminal, else a plain line every ~10% of the epoch."""
    import sys

    stream = stream or sys.stdout
    tty, every = stream.isatty(), max(1, steps // 10)

    def on_step(step: int, m: dict) -> None:
        done = step + 1
        if not tty and done % every and done != steps:
            return
        bar = "#" * (20 * done // steps) + "." * (20 - 20 * done // steps) if tty else ""
        line = (
            f"epoch {epoch}/{epochs} {bar} step {done}/{steps} loss {m['loss']:.4f} lr {m['lr']:.2e} "
            f"samples/s {m['samples_per_s'] * world:,.0f}"
        )
        stream.write(("\r" + line + ("\n" if done == steps else "")) if tty else line + "\n")
        stream.flush()

    return on_step


def rank0_steps(epoch: int, epochs: int, steps: int, world: int, step_log: list, first: dict, points: int = 50):
    """Rank 0's step hook: the progress line, and about ``points`` per-step rows per epoch (loss,
    learning rate, whole-job samples/s and tokens/s) kept for MLflow; ``first["at"]``: the wall
    clock at the end of this process's first optimizer step."""
    printer, every = progress_printer(epoch + 1, epochs, steps, world), max(1, steps // points)

    def on_step(step: int, m: dict) -> None:
        first.setdefault("at", time.time())
        printer(step, m)
        if (step + 1) % every == 0 or step + 1 == steps:
            step_log.append(
                {
                    "step": epoch * steps + step + 1,
                    "loss": m["step_loss"],
                    "lr": m["lr"],
                    "samples_per_s": m["step_samples_per_s"] * world,
                    "tokens_per_s": m["step_tokens_per_s"] * world,
                }
            )

    return on_step
