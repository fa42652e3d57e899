"""Differentially private training: DP-SGD through Opacus.

The driver plans the run (``plan``): from the target ε, δ (default 1 / training rows), the sample
rate (global batch / training rows) and the number of optimizer steps, Opacus's RDP accountant
gives the noise multiplier that spends at most ε. Each rank then clips every sample's gradient to
``dp_max_grad_norm``, rank 0 adds Gaussian noise of ``noise_multiplier * dp_max_grad_norm`` to the
sum, and the ranks average the noisy sum (Opacus's ``DistributedDPOptimizer`` under its
``DifferentiallyPrivateDistributedDataParallel``, which replaces DDP's gradient hooks). The
accountant's history is checkpointed with the model, so a resumed run spends what the killed
one would have.

The accountant's analysis assumes each batch is a Poisson sample of the training rows; the ranks
read shuffled batches of a fixed size instead, as Opacus does with ``poisson_sampling=False``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

ACCOUNTANT = "rdp"


class PrivacyBudgetSpent(RuntimeError):
    """Another epoch would spend more than the target ε."""


@dataclass(frozen=True)
class PrivacyPlan:
    target_epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    """Global batch / training rows: the share of the rows each optimizer step sees."""
    steps: int
    """Optimizer steps the noise was planned for (every epoch's)."""

    def as_dict(self) -> dict:
        return asdict(self)


def plan(*, epsilon: float, delta: float | None, max_grad_norm: float, train_rows: int, global_batch: int,
         steps: int) -> PrivacyPlan:  # fmt: skip
    """The noise that spends at most ``epsilon`` over ``steps`` steps of ``global_batch`` rows."""
    from opacus.accountants.utils import get_noise_multiplier

    delta = delta if delta is not None else 1.0 / train_rows
    sample_rate = min(1.0, global_batch / train_rows)
    noise = get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
                                 accountant=ACCOUNTANT)  # fmt: skip
    return PrivacyPlan(epsilon, delta, max_grad_norm, float(noise), sample_rate, steps)


def spent(history: list, delta: float) -> float:
    """ε spent by an accountant ``history`` (``[(noise_multiplier, sample_rate, steps), ...]``)."""
    from opacus.accountants import RDPAccountant

    if not history:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [tuple(h) for h in history]
    return float(accountant.get_epsilon(delta))


def check_budget(privacy: PrivacyPlan, history: list, next_steps: int) -> None:
    """``PrivacyBudgetSpent`` if ``next_steps`` more steps would spend more than the target ε."""
    after = spent([*history, (privacy.noise_multiplier, privacy.sample_rate, next_steps)], privacy.delta)
    if after > privacy.target_epsilon + 1e-9:
        done = sum(h[2] for h in history)
        raise PrivacyBudgetSpent(
            f"the privacy budget would be exceeded: {done} steps spent ε={spent(history, privacy.delta):.3f}, "
            f"{next_steps} more would spend ε={after:.3f} > train.dp_epsilon={privacy.target_epsilon}"
        )


class WithPositions(torch.nn.Module):
    """``model`` given explicit ``position_ids``, one row per sample: Opacus computes per-sample
    gradients from each layer's batch dimension, which the models' shared position row lacks."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, labels=None):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, position_ids=positions)


def make_private(model, opt, privacy: PrivacyPlan, batch_size: int):
    """``(module to train, optimizer)`` for DP-SGD: ``model`` with per-sample gradients under
    Opacus's DP-DDP, and ``opt`` clipping, noising and averaging them; the accountant is the
    optimizer's ``accountant``, stepped by it."""
    from opacus import GradSampleModule
    from opacus.accountants import RDPAccountant
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
    from opacus.optimizers import DistributedDPOptimizer

    module = DPDDP(GradSampleModule(WithPositions(model), loss_reduction="mean"))
    private = DistributedDPOptimizer(opt, noise_multiplier=privacy.noise_multiplier,
                                     max_grad_norm=privacy.max_grad_norm, expected_batch_size=batch_size,
                                     loss_reduction="mean")  # fmt: skip
    private.accountant = RDPAccountant()
    private.attach_step_hook(private.accountant.get_optimizer_hook_fn(sample_rate=privacy.sample_rate))
    return module, private


def report(privacy: PrivacyPlan, history: list, *, tokenizer_from_data: bool) -> dict:
    """The report's ``training.privacy``: what was spent, and on what terms."""
    return {
        "epsilon": round(spent(history, privacy.delta), 6),
        "target_epsilon": privacy.target_epsilon,
        "delta": privacy.delta,
        "noise_multiplier": privacy.noise_multiplier,
        "max_grad_norm": privacy.max_grad_norm,
        "sample_rate": privacy.sample_rate,
        "steps": sum(h[2] for h in history),
        "accountant": ACCOUNTANT,
        "tokenizer_from_data": tokenizer_from_data,
    }
