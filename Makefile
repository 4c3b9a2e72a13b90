# Two commands do everything: `make demo` (the main job end to end) and `make test`.
# Both create .venv on first use and install the project with its training and dev extras.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Generated from the installed tensorrt-stubs (not committed): regenerated whenever it is missing.
TRT_STUBS := .typings/tensorrt/__init__.pyi
DEMO_OUT ?= demo-out

.PHONY: install test lint typecheck cuda-check demo gpu-check bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[train,dev,serve,ray]"
	# tensorrt-stubs declares a dependency on tensorrt itself, whose libraries come from NVIDIA's own
	# index (unreachable here): the stubs alone are all mypy needs.
	$(PY) -m pip install -q --no-deps "tensorrt-stubs==10.13.0.35.1"
	@touch $(STAMP)

$(TRT_STUBS): $(STAMP) scripts/prepare_trt_stubs.py
	$(PY) scripts/prepare_trt_stubs.py

install: $(STAMP) $(TRT_STUBS)

lint: install
	$(PY) -m ruff check tgan_deploy tests benchmarks experiments

typecheck: install
	$(PY) -m mypy tgan_deploy

# Compile-only check of the CUDA kernels against the installed torch headers (no GPU needed).
cuda-check: install
	@if command -v nvcc >/dev/null 2>&1; then $(PY) -m tgan_deploy.ops.build --compile-check; \
	else echo "cuda-check: nvcc not found, skipped"; fi

# pytest-xdist: two workers on the 2-core CI machine (measured in docs/testing.md), a test file per worker so each
# module's shared trained models are built once; TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: lint typecheck cuda-check
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

demo: install
	$(PY) -m tgan_deploy demo --out $(DEMO_OUT)

# Every GPU check in one call (run on a machine with a CUDA GPU; see docs/gpu.md).
gpu-check:
	bash scripts/gpu-check.sh

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache .mypy_cache
