#!/usr/bin/env bash
# Every GPU check of tgan-deploy in one call. Run it on a machine with a CUDA GPU: `bash scripts/gpu-check.sh`
# (or `make gpu-check`). It keeps that machine's own torch (the project goes on PYTHONPATH; set
# GPU_CHECK_PIP_INSTALL=1 to `pip install --no-deps -e .` instead), runs `pytest -m gpu`, runs the GPU
# benchmarks (results, with date and device, under benchmarks/results/), and exits non-zero if any step failed.
# Logs of every step: benchmarks/results/gpu-check-<UTC time>/<step>.log (GPU_CHECK_LOG_DIR overrides).
#
# To add a part's checks: append one `step <name> <command...>` line in the "checks" section below.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOG_DIR=${GPU_CHECK_LOG_DIR:-benchmarks/results/gpu-check-$STAMP}
mkdir -p "$LOG_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TGAN_DEPLOY_EXT_VERBOSE=${TGAN_DEPLOY_EXT_VERBOSE:-1}  # the build log shows the nvcc command lines
failures=()

step() {  # step NAME COMMAND...: run it, log it, remember a failure, go on with the next step
  local name=$1
  shift
  echo "=== [$name] $*"
  if "$@" 2>&1 | tee "$LOG_DIR/$name.log"; then
    echo "=== [$name] ok"
  else
    echo "=== [$name] FAILED (log: $LOG_DIR/$name.log)"
    failures+=("$name")
  fi
}

# ---- environment
step environment bash -c "(nvidia-smi || echo 'nvidia-smi not found'); $PY -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else None)'"
if ! $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu-check: torch sees no CUDA GPU here; nothing to check" >&2
  exit 2
fi
if [[ "${GPU_CHECK_PIP_INSTALL:-0}" == "1" ]]; then
  step install $PY -m pip install --no-deps -e .
fi
if ! $PY -m pytest --version >/dev/null 2>&1; then
  echo "gpu-check: pytest is not installed for $PY; install it (pip install pytest) and run again" >&2
  failures+=("pytest-missing")
fi

# ---- checks (one line per check; keep each self-contained)
# Fused pair-score op (docs/pairing.md): build the CUDA extension, its tests, its benchmark, and what its
# self-check (impl="auto") costs and finds per dtype (3 fresh processes).
step pairing-build $PY -m tgan_deploy.ops.build --kind cuda
step pytest-gpu $PY -m pytest -m gpu -q -p no:cacheprovider tests
step pairing-bench $PY benchmarks/pairing.py --device cuda --note "scripts/gpu-check.sh $STAMP"
step pairing-selfcheck $PY benchmarks/pairing_selfcheck.py --device cuda --processes 3 --note "scripts/gpu-check.sh $STAMP"
# TensorRT export + runtime (skipped inside pytest where TensorRT is not installed; see docs/export.md).
step pytest-tensorrt $PY -m pytest -m tensorrt -q -p no:cacheprovider tests
# Runtime: TensorRT fp16 / ONNX Runtime CUDA vs PyTorch eager and CUDA graphs (docs/runtime.md).
step runtime-bench $PY benchmarks/runtime.py --gpu
# tgan-serve over HTTP vs the in-process batcher on the GPU (docs/serve.md); about a minute. Needs the serve
# extra and tritonclient[http], which the lent machine's image may lack: then it says so and skips.
if $PY -c 'import uvicorn, starlette, prometheus_client, tritonclient.http, httpx' 2>/dev/null; then
  step serve-bench $PY benchmarks/serve.py --gpu --rounds 1
else
  echo "=== [serve-bench] skipped: pip install 'tgan-deploy[serve]' 'tritonclient[http]' httpx to run it"
fi

# ---- summary
if ((${#failures[@]})); then
  echo "gpu-check: FAILED steps: ${failures[*]} (logs in $LOG_DIR)"
  exit 1
fi
echo "gpu-check: all steps passed (logs in $LOG_DIR; benchmark tables in benchmarks/results/*-cuda.md)"
