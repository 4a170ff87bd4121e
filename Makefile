# The two commands of the README are `make demo` and `make test`; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch with the torchvision build that imports beside it (the registry's torchvision is built
# against the CUDA torch, which runs on a CPU too); see docs/extractors.md, "The environment".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install lint test test-fast test-slow demo bench docs clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[extract,backbones,dask,dev]"
	touch $(STAMP)

# Import contracts, ruff (lint and format) and mypy (settings in ruff.toml and setup.cfg).
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The edit loop: leaves out the tests marked heavy (backbone parity, the demo, Dask), on 2
# processes; `make test` runs everything CI runs.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not heavy" -n 2

test-slow: install
	# pytest exits 5 when no test is marked slow; that is not a failure.
	$(BIN)/python -m pytest -m slow || test $$? -eq 5

demo: install
	$(BIN)/avscene demo --out demo-output

bench: install
	$(BIN)/python -m benchmarks

docs: install
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache
