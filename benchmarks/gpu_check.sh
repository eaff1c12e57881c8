#!/usr/bin/env bash
# The GPU check of issue 13, in one script of about ten minutes (H100/H200 class device).
#
#   bash benchmarks/gpu_check.sh                 # from the repository root; writes to $OUT
#
# 1. pytest -m gpu (the fast path: no host syncs in a step, bf16, channels_last, seed batching,
#    the reproduction circuits and a converted torchvision ResNet-18 on the device);
# 2. benchmarks/step_time.py --device cuda: ResNet-20 and ResNet-18, bf16 + channels_last, every
#    rule (goal: <= 1.05x plain PyTorch's step time, <= 1.10x its peak memory);
# 3. benchmarks/vs_biotorch.py --device cuda (goal: >= 1.5x faster than BioTorch 0.0.16), when a
#    BioTorch wheel is at .whl/ (pip download --no-deps biotorch==0.0.16 -d .whl; the device
#    machine has no network);
# 4. as many epochs of the BioTorch ResNet-20 table as fit: python -m biofa.reproduce biotorch
#    --scale gpu (all six rules, 1 seed, 10 epochs of the full recipe), with its report and
#    error-angle figure.
#
# Every step has its own time limit so that one slow step cannot eat the others' time; what
# each wrote is under $OUT (default benchmarks/results/gpu_check). Nothing here has run yet: no
# GPU was lent to the session that wrote it (docs/benchmarks.md says so).
set -u
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
for d in "$PWD/shared/data" "$PWD/../shared/data" "$PWD/../../shared/data"; do
  if [ -z "${BIOFA_DATA_DIR:-}" ] && [ -f "$d/cifar10-jpeg.zip" ]; then export BIOFA_DATA_DIR="$d"; fi
done
stamp() { date -u +%H:%M:%S; }
{
  echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

echo "[$(stamp)] 1/4 pytest -m gpu"
timeout 150 python -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py tests/test_gpu_repro.py \
  > "$OUT/pytest-gpu.txt" 2>&1; echo "  exit $?"; tail -3 "$OUT/pytest-gpu.txt"

echo "[$(stamp)] 2/4 step_time (ResNet-20, ResNet-18; bf16, channels_last; every rule)"
timeout 170 python benchmarks/step_time.py --device cuda --models resnet20,resnet18 \
  --precisions bf16 --channels-last on --reps 8 --steps 5 --out "$OUT/step_time-cuda.json" \
  > "$OUT/step_time.txt" 2>&1; echo "  exit $?"; tail -30 "$OUT/step_time.txt"

echo "[$(stamp)] 3/4 vs_biotorch"
WHEEL=$(ls .whl/biotorch-*.whl 2>/dev/null | head -1)
if [ -n "$WHEEL" ]; then
  python -m venv --system-site-packages /tmp/bt && /tmp/bt/bin/pip install -q --no-deps "$WHEEL" \
    && timeout 120 /tmp/bt/bin/python benchmarks/vs_biotorch.py --device cuda --train-steps 0 \
         --out "$OUT/vs_biotorch-cuda.json" > "$OUT/vs_biotorch.txt" 2>&1
  echo "  exit $?"; tail -15 "$OUT/vs_biotorch.txt"
else
  echo "  skipped: no BioTorch wheel in .whl/" | tee "$OUT/vs_biotorch.txt"
fi

echo "[$(stamp)] 4/4 BioTorch ResNet-20 table, scale gpu"
timeout 240 python -m biofa.reproduce biotorch --scale gpu --jobs 6 --out "$OUT/biotorch_gpu" \
  > "$OUT/biotorch_gpu.txt" 2>&1; echo "  exit $?"
# whatever finished within the limit, reported (a second call continues the unfinished runs)
python -m biofa.reproduce biotorch --scale gpu --report-only --out "$OUT/biotorch_gpu" \
  >> "$OUT/biotorch_gpu.txt" 2>&1
tail -25 "$OUT/biotorch_gpu.txt"
echo "[$(stamp)] done; files in $OUT"
