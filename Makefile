# `make demo` and `make test` do all set-up on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The pinned CPU build lies on this kind of machine's disk; a plain `torch` requirement would pull CUDA.
TORCH_VERSION ?= 2.13.0

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/raysemble run examples/digits.yaml --replace

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=40

bench: setup
	$(PY) bench/sweep_overhead.py
	$(PY) bench/quality.py
	$(PY) bench/serving.py

clean:
	rm -rf $(VENV) .raysemble
