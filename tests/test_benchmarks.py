"""Every benchmark script runs, in its fast mode, so that none of them can rot.

Each ``benchmarks/*.py`` script named in ``run_all.SCRIPTS`` is run as a user runs it
(``python benchmarks/<script> --fast`` from the repository root, in a fresh process)
with ``CONCRETE_BENCH_FAST=1``: tiny sizes and few repeats, seconds of work.  The test
checks the exit status and that the markdown tables came out, including the NumPyro
side (not a "skipped" line).  The numbers themselves are not checked: in fast mode they
are noise by design.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"common.py", "run_all.py", "by_hand.py", "floors_jax.py", "floors_torch.py"}

# benchmarks/ is a folder of scripts, not a package: load run_all.py by path.
_spec = importlib.util.spec_from_file_location("benchmarks_run_all", BENCHMARKS / "run_all.py")
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)

EXPECTED = {
    "throughput.py": [
        "### PyTorch / Pyro (eager)",
        "| ours vs torch built-in",
        "ours/torch time",
        "### NumPyro (everything under `jax.jit`)",
        "ours/jitted-floor time",
    ],
    "numerics.py": [
        "### Fraction of non-finite log_prob of own samples",
        "### Fraction of non-finite gradients",
        "| torch RelaxedOneHotCategorical",
        "| numpyro RelaxedBernoulliLogits: log_prob(x, intermediates)",
        "### Binary Concrete at the boundary",
    ],
    "svi_cost.py": [
        "### Steps per second, as ratios",
        "relaxed/enumerated steps/s, Pyro",
        "NumPyro-relaxed/Pyro-enumerated steps/s",
        "### Scaling: exponent p of time per step ~ size^p",
        "| NumPyro relaxed (jit)",
    ],
    "gradient_quality.py": [
        "### Relative variance of the encoder gradient",
        "| Concrete (Pyro)",
        "| score function + baseline (Pyro)",
        "| Concrete (NumPyro, jit)",
        "relaxed/this",
        "### Held-out bound after",
    ],
    "estimators.py": [
        "### PyTorch / Pyro (eager)",
        "### NumPyro (every step under `jax.jit`)",
        "| RebarELBO",
        "| VimcoELBO",
        "variance x time / score function",
        "library / by hand",
        "; vectorised",
        "### PyTorch / Pyro against the plain-torch floor, validation on",
        "library / floor",
        "| RelaxELBO(tune_on='logits')",
    ],
    "multi_sample.py": [
        "## The estimators at equal model evaluations",
        "| DisARM (pair)",
        "| RODEO K=3",
        "variance after",
        "time / relaxed step",
    ],
    "numpyro_floors.py": [
        "## NumPyro's estimators against the bare JAX floor",
        "| RebarELBO(tune=False)",
        "| RelaxELBO",
        "| RlooELBO(K=5)",
        "library / floor",
    ],
    "peers.py": [
        "## REBAR and RELAX: ours, the torch floor and the peers",
        "| ours: Pyro",
        "REBAR / ours (range)",
    ],
}
# Scripts that read the binarized MNIST file: run only where CONCRETE_MNIST names it (the suite
# never downloads it).
NEEDS_MNIST = {
    "gradient_quality.py",
    "estimators.py",
    "multi_sample.py",
    "numpyro_floors.py",
    "peers.py",
}


def test_run_all_runs_every_benchmark_script():
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - HELPERS
    assert set(run_all.SCRIPTS) == scripts
    assert set(EXPECTED) == scripts


@pytest.mark.parametrize("script", run_all.SCRIPTS)
def test_benchmark_script_runs_in_fast_mode(script):
    mnist = os.environ.get("CONCRETE_MNIST")
    if script in NEEDS_MNIST and not (mnist and os.path.exists(mnist)):
        pytest.skip(
            f"{script} needs binarized MNIST: set CONCRETE_MNIST=/path/to/binarized_mnist.npz "
            f"(currently {mnist!r}; the Makefile sets it from ../shared/data/ beside the clone)"
        )
    env = {**os.environ, "CONCRETE_BENCH_FAST": "1"}
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "--fast" in result.stdout  # the fast mode was honoured
    for text in EXPECTED[script]:
        assert text in result.stdout, f"{text!r} missing from the output of {script}"
    assert "skipped" not in result.stdout, result.stdout
