# The README's quickstart: `make demo` and `make test`. Each builds .venv from the
# pinned constraints on first use, then does its job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ssm-etl needs Python 3.11+; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ssm-etl demo

# Changes nothing outside the project and its caches. The report's browser test uses
# Debian's chromium when it is installed (CI installs it: .ci/run), and skips saying so.
test: $(STAMP)
	$(BIN)/ruff check pipeline flows emulator tests
	$(BIN)/ruff format --check pipeline flows emulator tests
	$(BIN)/mypy pipeline
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check pipeline flows emulator tests
	$(BIN)/ruff format --check pipeline flows emulator tests
	$(BIN)/mypy pipeline

# Performance figures are ratios measured side by side in one run (see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-lake .pytest_cache
