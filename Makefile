# Everything a fresh machine needs: `make demo` and `make test` set up on their own.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLEAD  := $(VENV)/bin/clead
TORCH  ?= torch==2.13.0
DATA   ?= /usr/share/datasets/fashion-mnist

.PHONY: setup data demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test]'
	touch $@

data:
	@if [ -d "$(DATA)" ]; then echo "Fashion-MNIST found in $(DATA)"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (needs root) or pass --data-dir" >&2; exit 2; fi

# Train C-LEAD on Fashion-MNIST with a short budget, evaluate it, print the table once (eval's copy goes to
# /dev/null; its progress and log lines go to stderr).
demo: setup data
	$(CLEAD) train --config configs/demo.yaml --out runs/demo --overwrite
	$(CLEAD) eval runs/demo --n 1000 > /dev/null
	$(CLEAD) report runs/demo --out runs/demo/report.md

test: setup
	$(PY) -m pytest

# ruff: lint (pyflakes, pycodestyle, import order, bugbear) and formatting, as configured in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: setup data
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs
