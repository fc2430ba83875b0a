# Everything a fresh clone needs: `make demo` and `make test` build .venv themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
# The binarized MNIST file is never committed: load_binarized_mnist() downloads it into the user
# cache on first use. A copy beside the clone (../shared/data/) is used instead when there is one;
# the tests that need the data skip without CONCRETE_MNIST (they never download).
ifneq ($(wildcard ../shared/data/binarized_mnist.npz),)
export CONCRETE_MNIST ?= $(abspath ../shared/data/binarized_mnist.npz)
endif

.PHONY: venv demo test test-fast test-extended test-generated lint format bench tutorials docs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

demo: venv
	$(PY) examples/demo.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --durations=15 -m "not extended"

test-fast: venv
	$(PY) -m pytest -n 2 -m "not slow and not extended"

# What CI leaves out: more parametrisations of properties it checks once per code path.
test-extended: venv
	$(PY) -m pytest -n 2 -m extended

# The estimators on more generated models than the suite's fixed sample (the seeds 0 .. n-1),
# with the upstream score function as a control: minutes; a failure names its seed and estimator.
test-generated: venv
	CONCRETE_GENERATED_SEEDS=$${CONCRETE_GENERATED_SEEDS:-40} $(PY) -m pytest -n 2 -m generated tests/pyro/test_generated.py tests/numpyro/test_generated.py

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The site, warnings as errors, into docs/_build/html: the API reference, the guides, and the
# tutorials executed at the small budget (docs/conf.py).
docs: $(VENV)/.installed-docs
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

$(VENV)/.installed-docs: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[docs]'
	touch $@

bench: venv
	$(PY) benchmarks/run_all.py

# Every tutorial at its full budget, as a reader runs it (a few minutes each on 2 cores); the last
# cell of each notebook checks the numbers its text states, so a change that breaks one fails here.
tutorials: venv
	CONCRETE_TUTORIAL_BUDGET=full $(PY) -m pytest -p no:xdist -m slow tests/tutorials -k runs_top_to_bottom

# The paper's tables (benchmarks/paper/README.md): `make paper` runs the CPU preset (two
# processes, one per core, then the table). Each process runs every row of its shard even
# when one fails, then lists the failed rows and exits non-zero, and so does `make paper`;
# rerun it to go on where it stopped (finished rows are skipped, the others resume from
# their checkpoints). `make paper-small` runs a few steps of every row of both tables
# (minutes), `make paper-table` prints the markdown table and draws the figure from the
# results so far (rows still training are listed under the table). PAPER_ARGS go to the
# runner: the committed JSONs in benchmarks/paper/results/ come from an earlier version of
# it, which it refuses to overwrite, so `make paper PAPER_ARGS=--no-resume` reruns them
# (once: after an interruption, `make paper` alone goes on).
.PHONY: paper paper-small paper-table
paper: venv
	$(PY) -m benchmarks.paper.run --preset cpu --shard 0/2 $(PAPER_ARGS) & first=$$!; \
	$(PY) -m benchmarks.paper.run --preset cpu --shard 1/2 $(PAPER_ARGS); second=$$?; \
	wait $$first; status=$$?; \
	$(MAKE) paper-table; exit $$((status | second))

paper-small: venv
	$(PY) -m benchmarks.paper.run --preset small $(PAPER_ARGS)
	$(MAKE) paper-table

paper-table: venv
	$(PY) -m benchmarks.paper.table
	$(PY) -m benchmarks.paper.plot
