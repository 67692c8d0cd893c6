# THE two commands: `make demo` and `make test`. Both create .venv if missing and install the package.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-unit bench gpu-check reproduce lint install clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# the quickstart regime search (about 5 minutes on 2 CPU cores, 4:57 measured); `mixsize-ray demo` is the single training run
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/mixsize-ray tune search_spaces/quickstart.yaml

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH)

# S(144) D+ vs fixed 224 on one GPU (ResNet-50, bf16; under 5 minutes): benchmarks/results/gpu_check.json; smoke run without CUDA
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

# fixed vs B+ vs D+ on the embedded data, 3 seeds (under 75 minutes on 2 CPU cores): benchmarks/results/reproduce.*
# REPRODUCE_ARGS=--resume keeps finished runs of an interrupted one
reproduce: $(STAMP)
	$(PY) -m benchmarks.reproduce $(REPRODUCE_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
