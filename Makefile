# The two commands in the README: `make demo` and `make test`.
# Each creates or updates .venv from uv.lock first (scripts/setup.sh).
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data/fashion-mnist-32

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/fashion-tune data prepare fashion-mnist --out $(DATA)
	$(BIN)/fashion-tune data inspect $(DATA)

lint: setup
	$(BIN)/ruff check fashion_tune tests benchmarks
	$(BIN)/ruff format --check fashion_tune tests benchmarks
	$(BIN)/mypy fashion_tune

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/data_loading.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
