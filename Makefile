# The two commands in the README: `make demo` and `make test`.
# Each creates or updates .venv from uv.lock first (scripts/setup.sh).
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data/fashion-mnist-32
RESULTS ?= results
REPORT ?= reports/quick

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

# prepare Fashion-MNIST -> quick search on embedded Ray -> report; a second run resumes the
# experiment (nothing is trained twice) and rewrites the report
demo: setup
	$(BIN)/fashion-tune data prepare fashion-mnist --out $(DATA)
	$(BIN)/fashion-tune search search_spaces/quick.yaml --data $(DATA) --storage $(RESULTS) \
	    $$([ -f $(RESULTS)/quick/tuner.pkl ] && echo --resume)
	$(BIN)/fashion-tune report $(RESULTS)/quick --out $(REPORT)

lint: setup
	$(BIN)/ruff check fashion_tune tests benchmarks
	$(BIN)/ruff format --check fashion_tune tests benchmarks
	$(BIN)/mypy fashion_tune

# two workers (pytest-xdist); --dist loadscope keeps a module's tests on one worker, so
# its module fixtures (a search, a cluster, a browser, an S3 server) are built once
test: lint
	$(BIN)/pytest -n 2 --dist loadscope

bench: setup
	$(BIN)/python benchmarks/data_loading.py
	$(BIN)/python benchmarks/training_speed.py
	$(BIN)/python benchmarks/search_overhead.py
	$(BIN)/python benchmarks/search_efficiency.py
	$(BIN)/python benchmarks/gpu_packing.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/chaos.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
