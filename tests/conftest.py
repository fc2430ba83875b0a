"""Shared test configuration.

Layout: ``tests/contract_suite.py`` states the family's contract once, as the class
``ContractSuite``; ``tests/<backend>/test_contract.py`` binds a ``backend`` fixture
(``tests/backends.py``) and subclasses it.  ``tests/references.py`` holds the independent
float64 reference densities.  ``tests/``, ``tests/pyro/`` and ``tests/numpyro/`` are
packages so that the two ``test_contract.py`` files can share a basename.

Float64: torch takes the dtype from the tensors the adapter passes (the default dtype
stays float32).  JAX truncates to float32 unless x64 is enabled, and we never enable it
for the session: that would turn every other NumPyro test, and the float32 checks here,
into float64 runs.  The NumPyro adapter enters ``jax.enable_x64(True)`` around each
call on a float64 distribution instead; the fixture below checks that it never leaks.

Heavy under JAX: ``contract_suite.HEAVY`` (the ``heavy`` marker) tags what is cheap in
Pyro but costs a JIT compilation per new shape in JAX; a test class that sets
``heavy_is_extended = True`` (the NumPyro binding) gets those items marked ``extended``:
CI (``make test``, ``-m "not extended"``) keeps one cheap parametrisation of every
property there, Pyro's binding runs every parametrisation, and ``make test-extended``
runs NumPyro's others.

Threads: the suite runs as ``pytest -n 2`` on two cores, so torch's intra-op pool is
set to one thread per worker; with more, small kernels (``log_softmax`` over a short
last dimension) spin on an oversubscribed machine and run ten times slower.

Compilations: every process of a run (the two workers, and the notebook kernels, scripts
and multi-device workers the tests start) compiles the same small programs again, most of
them NumPyro's eager set-up of an autoguide, one XLA compilation per operation and shape
(an autoguide's first ``svi.init`` on a 20-step HMM: 10.3 s cold, 4.8 s with the programs
compiled by another process).  One JAX compilation cache per run, created here before any
test imports JAX and found by the other processes through the environment they inherit,
compiles each once.  It is new for each run, so that no run reads another's programs, and
removed at its end; ``JAX_COMPILATION_CACHE_DIR`` set beforehand is used as given.  No size
limit: with one, JAX scans the whole directory at every write (a run of the suite took 26
minutes instead of 15).  Without it JAX takes no lock, and an entry read while another
process writes it fails to decompress: JAX warns and compiles the program itself.
"""

import os
import shutil
import sys
import tempfile

import pytest
import torch

torch.set_num_threads(1)

_CACHE_OWNER = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _CACHE_OWNER:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="concrete-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_unconfigure(config):
    if _CACHE_OWNER:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "heavy: cheap in Pyro, one JIT compilation per shape in JAX; extended where the test "
        "class sets heavy_is_extended (tests/conftest.py)",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        cls = getattr(item, "cls", None)
        if getattr(cls, "heavy_is_extended", False) and item.get_closest_marker("heavy"):
            item.add_marker(pytest.mark.extended)


@pytest.fixture(autouse=True)
def _jax_x64_does_not_leak():
    """Fail a test that leaves ``jax_enable_x64`` switched on (only when jax is in use)."""
    before = _x64_enabled()
    yield
    if before is False and _x64_enabled():
        pytest.fail("jax_enable_x64 leaked out of a test: use the jax.enable_x64 context")


def _x64_enabled():
    jax = sys.modules.get("jax")
    return None if jax is None else bool(jax.config.jax_enable_x64)
