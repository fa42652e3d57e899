"""The pure training loop (no Spark, no Java) on a gold table's Parquet files: tokens/s and model
FLOPs utilisation for the tiny/small/base models, in bf16 on a CUDA device, else fp32 on the CPU.

python -m benchmarks.gpu --gold WORK/lake/gold [--models tiny,small,base] [--steps 30] [--out F.json]

MFU = achieved model FLOPs / peak: 6 x non-embedding parameters x tokens plus the attention
matmuls (12 x layers x width x hidden per token), over the card's dense bf16 peak (a table of
known cards, or --peak-tflops); on a CPU, over a measured fp32 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_flops(device, override_tflops: float | None) -> tuple[float, str]:
    import torch

    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name}: dense bf16 spec"
        raise SystemExit(f"unknown card {name!r}: pass --peak-tflops")
    a = torch.randn(1024, 1024)
    a @ a  # warm-up
    start, n = time.perf_counter(), 20
    for _ in range(n):
        a @ a
    return 2 * 1024**3 * n / (time.perf_counter() - start), "measured fp32 matmul"


def flops_per_step(model, batch: int, width: int) -> float:
    cfg = model.config
    embedding = sum(
        p.numel() for n, p in model.named_parameters() if "embeddings" in n or n.endswith(("wte.weight", "wpe.weight"))
    )
    params = sum(p.numel() for p in model.parameters()) - embedding
    tokens = batch * width
    return 6 * params * tokens + 12 * cfg.num_hidden_layers * cfg.hidden_size * width * tokens


def bench_model(size: str, data: dict, *, device, steps: int, batch_size: int, max_len: int, peak: float) -> dict:
    import torch

    from training.data import to_model_inputs
    from training.loop import make_optimizer
    from training.model import build_model

    task = "classification" if "label" in data else "causal-lm"
    labels = [str(i) for i in range(int(data["label"].max()) + 1)] if "label" in data else []
    vocab = int(data["input_ids"].max()) + 1
    torch.manual_seed(0)
    model = build_model(task, size, vocab_size=vocab, labels=labels, max_len=max_len).to(device)
    opt, sched = make_optimizer(model, lr=1e-4, weight_decay=0.01, total_steps=steps + 3, warmup_ratio=0.0)
    amp = torch.bfloat16 if device.type == "cuda" else None
    rows = data["input_ids"].shape[0]
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))

    def step(i: int) -> tuple[int, int]:
        idx = order[(i * batch_size) % max(rows - batch_size, 1) :][:batch_size]
        inputs = to_model_inputs({k: v[idx] for k, v in data.items()}, device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        return int(inputs["attention_mask"].sum()), inputs["input_ids"].shape[1]

    for i in range(3):  # warm-up: kernels, allocator
        step(i)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    real = flops = 0
    start = time.perf_counter()
    for i in range(steps):
        tokens, width = step(i)
        real += tokens
        flops += flops_per_step(model, batch_size, width)
    sync()
    seconds = time.perf_counter() - start
    return {
        "model": size,
        "task": task,
        "params": sum(p.numel() for p in model.parameters()),
        "precision": "bf16" if amp else "fp32",
        "tokens_per_s": real / seconds,
        "samples_per_s": steps * batch_size / seconds,
        "mfu": flops / seconds / peak,
    }


def main(argv: list[str] | None = None) -> dict:
    import torch

    from training.gold_files import load_gold

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gold", required=True, help="gold Delta table directory")
    p.add_argument("--version", type=int)
    p.add_argument("--models", default="tiny,small,base")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--peak-tflops", type=float)
    p.add_argument("--out")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak, peak_source = peak_flops(device, args.peak_tflops)
    data = load_gold(args.gold, args.version, split="train", max_len=args.max_len)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_flops": peak,
        "peak_source": peak_source,
        "rows": int(data["input_ids"].shape[0]),
        "models": [
            bench_model(
                m, data, device=device, steps=args.steps, batch_size=args.batch_size, max_len=args.max_len, peak=peak
            )
            for m in args.models.split(",")
        ],
    }
    for r in results["models"]:
        print(
            f"{results['device']:>24s} {r['model']:5s} {r['precision']} "
            f"{r['tokens_per_s']:>12,.0f} tokens/s  MFU {r['mfu']:.3f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
