"""The paper-reproduction runner (``benchmarks/paper``) in its small configuration.

Every method runs on both tables for a few steps on a few hundred images, through the
command line's ``main``; a method this checkout does not provide (the estimators that
come with the ``estimators`` subpackage) must fail its row with a message that says so,
and runs as soon as it is importable.  The numbers are not checked (a few steps mean
nothing); the record is: its fields, finite bounds, the curve, the paper's reference
number where the paper has one.  A rerun resumes from the checkpoint and restores the
trained state exactly.  Nothing here depends on the long runs.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paper import methods, protocol, run, table

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.environ.get("CONCRETE_MNIST", "")),
    reason="needs binarized MNIST: set CONCRETE_MNIST=/path/to/binarized_mnist.npz",
)

SMALL = [
    "--steps", "4", "--eval-every", "2", "--chunk", "2", "--train-images", "200",
    "--test-images", "200", "--train-eval-images", "200", "--eval-k", "4",
    "--curve-images", "100", "--curve-k", "4",
]  # fmt: skip
# Every bound is taken on chunks of 100 images with 4 particles: one shape, so the eager
# ``discrete_bound`` compiles its operations once per run.
# One row per (table, method, single- or multi-sample), on each table's smaller model.
ROWS = [
    (arch, name, m)
    for table_name, arch in (("density", "200H-784V"), ("structured", "392V-240H-240H-392V"))
    for name, method in methods.METHODS.items()
    for m in (1, 2)
    if method.valid_m(m)
    and any(r.method == name and protocol.ARCHITECTURES[r.arch].table == table_name
            for r in protocol.ALL_ROWS)
]  # fmt: skip
PYRO_ROWS = [
    ("200H-784V", "concrete", 1),
    ("200H-784V", "nvil", 1),
    ("392V-240H-240H-392V", "concrete", 2),
]


def _run(tmp_path, arch, name, m, backend="numpyro", extra=()):
    argv = ["--arch", arch, "--method", name, "--m", str(m), "--backend", backend, *SMALL]
    return run.main([*argv, "--out", str(tmp_path), *extra])


# The fast tier keeps Concrete at m = 1 on each table; the other rows run in the slow tier.
CASES = [
    pytest.param(
        backend,
        *row,
        marks=() if row[1:] == ("concrete", 1) and backend == "numpyro" else pytest.mark.slow,
    )
    for backend, rows in (("numpyro", ROWS), ("pyro", PYRO_ROWS))
    for row in rows
]


@pytest.mark.parametrize("backend, arch, name, m", CASES)
def test_every_method_runs_on_both_tables(tmp_path, backend, arch, name, m):
    assert _run(tmp_path, arch, name, m, backend) == 0
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert (record["arch"], record["method"], record["m"], record["backend"]) == (
        arch,
        name,
        m,
        backend,
    )
    assert record["steps"] == 4 and [p["step"] for p in record["curve"]] == [2, 4]
    for split, images in (("test", 200), ("train", 200)):
        assert record[split]["images"] == images and record[split]["k"] == 4
        assert math.isfinite(record[split]["nll"]) and record[split]["nll"] > 0
        assert math.isfinite(record[split]["se"]) and record[split]["seconds"] > 0
    assert record["paper"] == (
        None
        if protocol.paper_number(arch, name, m) is None
        else list(protocol.paper_number(arch, name, m))
    )
    assert record["seconds_per_step"] > 0 and record["versions"]["concrete-ppl"]
    assert record["config"]["lr"] == protocol.ARCHITECTURES[arch].lr


def test_a_rerun_resumes_from_the_checkpoint(tmp_path):
    assert _run(tmp_path, "200H~784V", "concrete", 1) == 0
    (path,) = tmp_path.glob("*.json")
    first = json.loads(path.read_text())
    path.unlink()
    assert _run(tmp_path, "200H~784V", "concrete", 1) == 0
    second = json.loads(path.read_text())
    assert second["curve"] == first["curve"]  # no step was trained again
    assert second["train_seconds"] == first["train_seconds"]
    assert second["test"]["nll"] == first["test"]["nll"]  # the same parameters, restored
    with pytest.raises(SystemExit, match="no-resume"):  # another learning rate: refused
        _run(tmp_path, "200H~784V", "concrete", 1, extra=("--lr", "0.01"))


def test_a_time_budget_stops_training_and_the_rerun_goes_on(tmp_path):
    # no minutes at all: one chunk of 2 steps, evaluated, recorded under the steps done
    extra = ("--steps", "6", "--chunk", "2", "--minutes", "0")
    assert _run(tmp_path, "200H~784V", "concrete", 1, extra=extra) == 0
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert (record["steps"], record["steps_requested"]) == (2, 6)
    assert "_2steps_" in path.name and [p["step"] for p in record["curve"]] == [2]
    assert math.isfinite(record["test"]["nll"])
    # the checkpoint resumes towards --steps when the budget allows
    assert _run(tmp_path, "200H~784V", "concrete", 1, extra=extra[:4]) == 0
    record = json.loads((tmp_path / path.name.replace("_2steps_", "_6steps_")).read_text())
    assert record["steps"] == 6 and record["curve"][0]["step"] == 2


def test_table_and_plot_show_ours_beside_the_papers(tmp_path):
    assert _run(tmp_path, "200H-784V", "concrete", 1) == 0
    records = table.load_records([tmp_path])
    text = table.tables(records)
    ours = f"{records[0]['test']['nll']:.2f}"
    assert "| 200H-784V" in text and ours in text and "107.3" in text and "107.5" in text
    assert "reference data typed from" in text
    from benchmarks.paper import plot

    out = plot.plot(records, tmp_path / "figure.png")
    assert out.stat().st_size > 1000


def test_a_method_is_refused_where_it_is_not_defined():
    backend = run.get_backend("numpyro")
    with pytest.raises(ValueError, match="not defined for m = 1"):
        methods.build(backend, "vimco", 1, None, None, "density")
    with pytest.raises(ValueError, match="unknown method"):
        methods.build(backend, "reinforce", 1, None, None, "density")


# Two host devices exist only if XLA is told before JAX starts: a fresh interpreter.
TWO_DEVICES = """
import json, sys
from pathlib import Path
from benchmarks.paper import run
out = Path(sys.argv[1])
for devices in (1, 2):
    argv = ["--arch", "200H~784V", "--method", "concrete", "--devices", str(devices)]
    assert run.main([*argv, *sys.argv[2:], "--out", str(out / str(devices))]) == 0
print(json.dumps([json.loads(next((out / str(d)).glob("*.json")).read_text()) for d in (1, 2)]))
"""


@pytest.mark.slow
def test_two_devices_give_the_one_device_numbers(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    root = str(Path(__file__).resolve().parents[1])  # benchmarks/ is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES, str(tmp_path), *SMALL],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(done.stdout.splitlines()[-1])
    assert (one["config"]["devices"], two["config"]["devices"]) == (1, 2)
    assert "x1" in one["device"] and "x2" in two["device"]
    # the same steps; only the order of float32 sums over the devices differs
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert b["test_nll"] == pytest.approx(a["test_nll"], rel=1e-5)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for split in ("test", "train"):
        assert two[split]["nll"] == pytest.approx(one[split]["nll"], rel=1e-5)
        assert two[split]["se"] == pytest.approx(one[split]["se"], rel=1e-4)


def test_devices_are_refused_where_they_cannot_be_used(tmp_path):
    argv = ["--arch", "200H-784V", *SMALL, "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"Pyro backend trains on one device.*LightningSVI"):
        run.main([*argv, "--backend", "pyro", "--devices", "2"])
    with pytest.raises(SystemExit, match=r"--devices must lie in \[1, .*got 0"):
        run.main([*argv, "--devices", "0"])
