# nbutils: `make run` executes the six notebooks, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
RUN_DIR ?= runs/latest

.PHONY: setup run test lint format lab bench clean wheel

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
	rm -rf $(VENV) runs dist build *.egg-info .pytest_cache .ruff_cache

# The wheel (notebooks included as package data) for `pip install`, Colab or a Kaggle dataset.
wheel: $(DEV_STAMP)
	$(BIN)/python -m build --wheel --outdir dist .
