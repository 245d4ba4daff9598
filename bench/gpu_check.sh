#!/usr/bin/env bash
# The GPU checks, on a machine with one CUDA GPU and r1zero's requirements installed (run from the repo root):
#   1. the tests marked `gpu` (CPU CI skips them): engines, learner log-probs, bf16 training, resume, eval;
#   2. bench/gpu_step.py: GRPO steps at Qwen2.5-Math-1.5B's shape, hf and fast engines (JSON);
#   3. the whole suite with the GPU visible (device "auto" picks CUDA), time-boxed.
# Each part runs whatever the one before it did; logs and results go to $1 (default runs/gpu_check).
set -uo pipefail
out="${1:-runs/gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/machine.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__)" | tee -a "$out/machine.txt"

timeout "${GPU_TESTS_TIMEOUT:-300}" python3 -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log"
echo "gpu tests: exit ${PIPESTATUS[0]}"

timeout "${BENCH_TIMEOUT:-240}" python3 bench/gpu_step.py --out "$out/gpu_step.json" 2>&1 | tee "$out/gpu_step.log"
echo "gpu_step: exit ${PIPESTATUS[0]}"

OMP_NUM_THREADS=2 timeout "${SUITE_TIMEOUT:-240}" python3 -m pytest -q --maxfail=30 -n 8 -m "not gpu" \
  -p no:cacheprovider > "$out/suite.log" 2>&1
echo "whole suite on the GPU machine: exit $?"
tail -5 "$out/suite.log"
