# The two commands of the README are `make demo` and `make test`; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch with the torchvision build that imports beside it (the registry's torchvision is built
# against the CUDA torch, which runs on a CPU too); see docs/extractors.md, "The environment".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install test test-slow demo bench docs clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[extract,backbones,dask,dev]"
	touch $(STAMP)

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

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
