# Everything a fresh clone needs: `make demo` and `make test` build .venv themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
# The binarized MNIST file is never committed; tests, tutorials and benchmarks find it here
# (beside the clone, or in the workplace's shared folder).
export CONCRETE_MNIST ?= $(abspath $(firstword $(wildcard ../shared/data/binarized_mnist.npz /work/shared/data/binarized_mnist.npz) ../shared/data/binarized_mnist.npz))

.PHONY: venv demo test test-fast lint format bench tutorials

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test,tutorials]'
	touch $@

demo: venv
	$(PY) examples/demo.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --durations=15

test-fast: venv
	$(PY) -m pytest -n 2 -m "not slow"

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: venv
	$(PY) benchmarks/run_all.py

# Every tutorial at its full budget, as a reader runs it (a few minutes each on 2 cores); the last
# cell of each notebook checks the numbers its text states, so a change that breaks one fails here.
tutorials: venv
	CONCRETE_TUTORIAL_BUDGET=full $(PY) -m pytest -p no:xdist -m slow tests/tutorials -k runs_top_to_bottom
