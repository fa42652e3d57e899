"""training.allocator: the memory one training step frees serves the next without being faulted in
again. Each case runs in a fresh interpreter: the setting is process-wide and for the process's life.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc: the setting does nothing elsewhere")

PROBE = """
import resource, sys
import torch
from tokenlake.training.allocator import keep_step_memory

kept = keep_step_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
model = torch.nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True)
opt = torch.optim.AdamW(model.parameters())
x = torch.randn(32, 128, 256)

def step():
    model(x).square().mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)

for _ in range(3):  # the first steps fault their memory in either way
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults_of_five_steps(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    return out[0], int(out[1])


def test_training_steps_reuse_the_memory_the_last_one_freed():
    kept, faults = page_faults_of_five_steps("keep")
    default_kept, default_faults = page_faults_of_five_steps("default")
    assert (kept, default_kept) == ("True", "False")
    # measured: 5,000-10,000 against 48,000-54,000 (each step maps and faults in its activations anew)
    assert faults < default_faults / 3


def test_an_owner_s_malloc_settings_are_left_alone():
    kept, _ = page_faults_of_five_steps("keep", MALLOC_ARENA_MAX="2", MALLOC_TRIM_THRESHOLD_=str(64 << 20))
    assert kept == "False"
