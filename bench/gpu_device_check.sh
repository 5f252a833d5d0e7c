#!/usr/bin/env bash
# The GPU checks for a lent device machine (the device tool), as one command that ends inside its 10 minutes:
# the GPU tests (tests/pipelines/renderers/test_diffusion_gpu.py, tiny random models on CUDA), then
# bench/gpu_render.py with the full-size random SD 1.5 architecture (no weights are downloaded), its
# configurations in order of importance and no new one started after a budget, results rewritten after each.
#
# The device machine has torch (CUDA), transformers, accelerate and the rest, but no diffusers and no internet:
#   here, once:   bash bench/gpu_device_check.sh --fetch-wheels      (into .whl/, which git ignores)
#   then:         device run: command "bash bench/gpu_device_check.sh", carry [".whl"], timeout_s 600
# What it writes under $OUT comes back: nvidia-smi.txt, gpu_tests.log, gpu_render.log, gpu_render.json.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(diffusers==0.42.1 importlib_metadata==10.2.0)
if [[ "${1:-}" == "--fetch-wheels" ]]; then
  set -e
  mkdir -p .git/info .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  ls -l .whl
  exit 0
fi

OUT="${OUT:-/tmp/onmodel-gpu-check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "no wheels in .whl/: run 'bash bench/gpu_device_check.sh --fetch-wheels' here first"; exit 2; }
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$OUT/nvidia-smi.txt"

# 1. GPU tests (~1-2 min: compile of the tiny UNet included; at most 150 s).
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/pipelines/renderers/test_diffusion_gpu.py \
  2>&1 | tee "$OUT/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

# 2. Throughput: vanilla and tuned eager at batch 1/4/8 first (bf16, then fp16), torch.compile last; writing the
#    ~6 GB of random fp32 components takes about a minute of the budget.
timeout 400 python3 bench/gpu_render.py --device cuda --sizes 512x768 --batches 1,4,8 --dtypes bfloat16,float16 \
  --compile off,default --steps 25 --iters 3 --models-dir /tmp/onmodel-bench --budget-s 270 \
  --out "$OUT/gpu_render.json" 2>&1 | tee "$OUT/gpu_render.log"
bench_rc=${PIPESTATUS[0]}

echo "gpu tests rc=$tests_rc, gpu_render rc=$bench_rc"
[[ $tests_rc -eq 0 && $bench_rc -eq 0 ]]
