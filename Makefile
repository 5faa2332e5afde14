# nape: two commands for a fresh clone, `make reproduce` and `make test` (Python 3.11, pip, no conda).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
NB     ?=
PARAMS ?=
# tests and reproduction run quiet: no progress bars
export TQDM_DISABLE
test unit notebooks reproduce: TQDM_DISABLE = 1
# tests run one process per core (pytest-xdist, two notebooks at a time): one torch thread each, since
# idle torch threads spin and several processes' pools on few cores slowed proxies about 10× (measured)
export OMP_NUM_THREADS
test unit notebooks: OMP_NUM_THREADS = 1

.PHONY: reproduce test unit notebooks run bench figures clean

# the venv is rebuilt only when the dependencies change
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)      # the CPU wheel; an unpinned torch pulls CUDA
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## reproduce: execute every notebook at its defaults (results/, figures/, stored outputs)
reproduce: $(BIN)/.installed
	$(BIN)/python -m nape_utils.experiments.reproduce notebooks

## test: unit, property and fault tests, then every notebook under nbval
test: unit notebooks

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests -q -n auto

# one notebook per worker (--dist loadscope keeps a notebook's cells in one kernel, in order)
notebooks: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

## run: make run NB=01_computation_graphs PARAMS="-p n_samples 20"
run: $(BIN)/.installed
	$(BIN)/nape run notebooks/$(NB).ipynb $(PARAMS)

## bench: speed benchmarks, written to results/bench/
bench: $(BIN)/.installed
	$(BIN)/nape bench graphs

figures: reproduce

clean:
	rm -rf .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
