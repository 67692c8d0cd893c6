# THE two commands: `make demo` and `make test`. Both create .venv if missing and install the package.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-unit bench lint install clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mixsize-ray demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache benchmarks/results
