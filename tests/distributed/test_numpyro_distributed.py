"""Specification of data-parallel relaxed SVI in NumPyro (``numpyro_concrete.distributed``).

The sharded runs need two devices, which JAX fixes when it starts: ``numpyro_sharded_worker.py``
runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` and trains
the same models with the same keys on one and on two devices.  Two devices sum the
gradient's per-device parts in another order than one device sums the whole batch, so the
runs agree to float32 rounding, not bit for bit.  The mixture's log-likelihood reference is
computed with scipy in float64.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from numpyro_concrete.distributed import data_mesh
from numpyro_concrete.problems import mixture_data
from tests.distributed.numpyro_sharded_worker import LOCS
from tests.distributed.reference import mixture_log_likelihood

ROOT = Path(__file__).resolve().parents[2]


def test_data_mesh_has_one_automatic_data_axis_over_the_devices():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.devices.size == jax.device_count()
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,)


def test_data_mesh_rejects_no_devices():
    with pytest.raises(ValueError, match=r"devices must name at least one device, got \[\]"):
        data_mesh([])


def _run_on_two_devices(*command: str) -> subprocess.CompletedProcess:
    """``python command`` with two host devices."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _on_two_devices(*command: str) -> str:
    """``python command`` with two host devices; its standard output."""
    result = _run_on_two_devices(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def padded() -> dict:
    return json.loads(_on_two_devices(str(ROOT / "tests/distributed/numpyro_padding_worker.py")))


def test_rows_that_do_not_split_over_the_devices_are_padded_and_masked(padded):
    """63 rows on two devices: the bound is the one-device bound of the 63 rows (the
    padding adds nothing and the real rows draw the same noise)."""
    assert padded["devices"] == 2
    assert padded["sharded"] == padded["one_device"]


def test_padding_a_model_with_a_global_site_is_an_error_that_says_what_to_pass(padded):
    assert "Pass a multiple of 2 rows (e.g. the first 62)" in padded["global_error"]


def test_the_example_refuses_more_devices_than_it_sees():
    example = str(ROOT / "examples/distributed_numpyro.py")
    result = _run_on_two_devices(example, "--devices", "3")
    assert result.returncode != 0
    assert "--devices 3: this process sees 2 device(s)" in result.stderr


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sharded") / "results.npz"
    _on_two_devices(str(ROOT / "tests/distributed/numpyro_sharded_worker.py"), str(out))
    with np.load(out) as results:
        return dict(results)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["sbn", "mixture", "rebar", "vimco"])
def test_the_sharded_update_compiles_once_and_runs_on_every_device(sharded, problem):
    for n in (1, 2):
        assert sharded[f"{problem}_compiles{n}"] == 1
        assert sharded[f"{problem}_devices{n}"] == n


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["sbn", "mixture", "rebar", "vimco"])
def test_two_devices_compute_the_one_device_run(sharded, problem):
    """The amortised sigmoid belief net, ``AutoRelaxed`` (one parameter per point) on the
    mixture, and the discrete net trained with REBAR (its tuned ``eta`` and temperature
    among the parameters) and VIMCO: the same losses and parameters after 20 steps, to
    float32 rounding."""
    np.testing.assert_allclose(sharded[f"{problem}_losses2"], sharded[f"{problem}_losses1"], 1e-5)
    np.testing.assert_allclose(
        sharded[f"{problem}_params2"], sharded[f"{problem}_params1"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_the_sharded_bound_is_the_one_device_bound(sharded):
    for n in (1, 2):
        np.testing.assert_allclose(sharded[f"bound{n}"], sharded["bound_one_device"], rtol=1e-6)
    reference = mixture_log_likelihood(mixture_data(64, LOCS, seed=0)[1], LOCS)
    np.testing.assert_allclose(sharded["exact_bound"], reference, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(os.environ.get("CONCRETE_MNIST", "")),
    reason="needs binarized MNIST: set CONCRETE_MNIST=/path/to/binarized_mnist.npz",
)
def test_the_example_prints_the_same_numbers_on_two_devices_and_one():
    small = ["--steps", "50", "--latents", "20", "--train-size", "2048", "--test-size", "200"]
    example = [str(ROOT / "examples/distributed_numpyro.py"), *small, "--samples", "5"]
    outputs = [_on_two_devices(*example, "--devices", n) for n in ("2", "1")]
    assert outputs[0].startswith("2 device(s)") and outputs[1].startswith("1 device(s)")
    results = [[line for line in out.splitlines() if "nats" in line] for out in outputs]
    assert len(results[0]) == 2 and results[0] == results[1]
