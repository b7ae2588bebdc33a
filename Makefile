# nbutils: `make run` executes the nine notebooks, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
RUN_DIR ?= runs/latest
UV_STAMP := $(VENV)/.uv-installed
LOWEST   := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.lowest-installed
# the tests of `make test-lowest` (all of them; a subset can be named: LOWEST_TESTS="tests/x.py")
LOWEST_TESTS ?=

.PHONY: setup run test test-lowest lint format lab bench clean wheel kaggle-dataset

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(DEV_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/python -m nbutils run --run-dir $(RUN_DIR)

# Formatting first (notebooks and the ```python blocks of docs/*.md included), then lint, then tests.
test: $(DEV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# uv resolves "the lowest versions requirements.txt allows"; it is installed into .venv like the
# other tools, so a fresh machine needs nothing else.
$(UV_STAMP): $(BIN)/python
	$(BIN)/python -m pip install -q uv
	touch $@

# .venv-lowest: every runtime dependency at the minimum requirements.txt states (uv's
# --resolution lowest-direct; their own dependencies at what those minimums allow), the test
# tools at their newest (they are not nbutils' dependencies), nbutils itself editable.
# `nbutils.versions.main --exact` fails unless every dependency really is at its minimum.
$(LOWEST_STAMP): $(UV_STAMP) requirements.txt requirements-dev.txt pyproject.toml
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(BIN)/uv pip install -q --python $(LOWEST)/bin/python --resolution lowest-direct -r requirements.txt
	$(BIN)/uv pip install -q --python $(LOWEST)/bin/python pytest pytest-timeout ruff build
	$(BIN)/uv pip install -q --python $(LOWEST)/bin/python --no-deps -e .
	$(LOWEST)/bin/python -c "import sys; from nbutils.versions import main; sys.exit(main(['--exact']))"
	touch $@

# The test suite at the lowest versions requirements.txt allows (docs/versions.md).
test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -c "import sys; from nbutils.versions import main; sys.exit(main(['--exact']))"
	$(LOWEST)/bin/python -m pytest -q $(LOWEST_TESTS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lab: $(DEV_STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(DEV_STAMP)
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_dask.py --quick

clean:
	rm -rf $(VENV) $(LOWEST) runs dist build *.egg-info .pytest_cache .ruff_cache

# The wheel (notebooks included as package data) for `pip install`, Colab or a Kaggle dataset.
wheel: $(DEV_STAMP)
	$(BIN)/python -m build --wheel --outdir dist .

# One folder for Kaggle with Internet off (docs/versions.md): the nbutils wheel and a wheel of every
# dependency for Kaggle's Python (KAGGLE_PYTHON). Add dist/kaggle-dataset to Kaggle as a dataset;
# the notebooks' setup cell installs from it with no package index.
KAGGLE_PYTHON ?= 3.12
kaggle-dataset: $(DEV_STAMP)
	$(BIN)/python tools/kaggle_dataset.py --out dist/kaggle-dataset --python-version $(KAGGLE_PYTHON)
