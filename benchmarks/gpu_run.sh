#!/usr/bin/env bash
# benchmarks/gpu.py on a GPU machine that has PyTorch, transformers and pyarrow but no Java and no
# tokenlake install (the source tree is put on PYTHONPATH): tiny, small and base at 32 samples a
# step, then at 256, in one process on one GPU (several: torchrun, see gpu.py --no-spark). The
# figures of benchmarks/README.md "GPU".
#   benchmarks/gpu_run.sh GOLD OUT_DIR        (MODELS, STEPS, STEPS_LARGE override the sizes)
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 GOLD OUT_DIR" >&2; exit 2; }
gold=$1 out=$2
models=${MODELS:-tiny,small,base}
mkdir -p "$out"
{
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import sys, torch, transformers, pyarrow; print("python", sys.version.split()[0], "torch", torch.__version__,
"transformers", transformers.__version__, "pyarrow", pyarrow.__version__)'
} | tee "$out/machine.txt"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
ln -s "$(cd "$(dirname "$0")/.." && pwd)" "$site/tokenlake"
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
status=0
for run in "32 ${STEPS:-200}" "256 ${STEPS_LARGE:-45}"; do
  read -r batch steps <<<"$run"
  if ! python3 -m tokenlake.benchmarks.gpu --no-spark --gold "$gold" --models "$models" --steps "$steps" \
      --batch-size "$batch" --out "$out/gpu-batch$batch.json" >"$out/batch$batch.log" 2>&1; then
    status=1
    tail -30 "$out/batch$batch.log"
  fi
  grep "real tokens/s" "$out/batch$batch.log"
done
exit $status
