# kronos-bt developer entry points. `make demo` and `make test` are the README quick start.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: install test test-all lint quality style bench bench-all demo train-default clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not gpu and not hub" $(PYTEST_ARGS)

lint quality: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Speed is measured here, never asserted in tests. `bench` is the quick set; `bench-all` adds the long runs.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_inference.py --quick
	$(BIN)/python benchmarks/bench_backtest.py

bench-all: bench
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_walkforward.py
	$(BIN)/python benchmarks/bench_sweep.py

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/kronos-bt run backtests/sp500_threshold.yaml

train-default: $(STAMP)
	$(BIN)/python -m kronos_model.train_default

clean:
	rm -rf $(VENV) runs .kronos_cache
