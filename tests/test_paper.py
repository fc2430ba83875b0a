"""The paper-reproduction runner (``benchmarks/paper``) in its small configuration.

Every method runs on both tables for a few steps on a few hundred images, through the
command line's ``main``.  The numbers are not checked (a few steps mean nothing); the
record is: its fields, finite bounds, the curve, the paper's reference number where the
paper has one.  What a run that lasts hours needs is checked at the same size: every bad
option is refused with one line before the data is loaded; a rerun skips a finished row,
resumes the others from their checkpoints, refuses other settings by name and ends with
the JSON of an uninterrupted run; a preset goes on after a failed row and exits 1; a
checkpoint is written whole or not at all; progress lines are throttled and say what is
left; the table labels a test subset.  Nothing here depends on the long runs.
"""

import io
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paper import backends, methods, protocol, run, store, table
from benchmarks.paper import progress as progress_module

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
    and any(
        r.method == name and protocol.ARCHITECTURES[r.arch].table == table_name
        for r in protocol.ALL_ROWS
    )
] + [
    ("200H-784V", name, 2) for name in ("rloo", "doublecv", "rodeo")
]  # fmt: skip (registered, not rows of the tables)
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
    # the table takes every method's record
    assert re.search(rf"\| +{re.escape(record['label'])} \|", table.tables([record]))
    assert record["config"]["lr"] == protocol.ARCHITECTURES[arch].lr


def test_a_rerun_skips_a_finished_row_and_resumes_from_the_checkpoint(tmp_path, capsys):
    assert _run(tmp_path, "200H~784V", "concrete", 1) == 0
    (path,) = tmp_path.glob("*.json")
    first = path.read_text()
    assert _run(tmp_path, "200H~784V", "concrete", 1) == 0  # finished: skipped, untouched
    assert path.read_text() == first and "done already" in capsys.readouterr().err
    path.unlink()
    assert _run(tmp_path, "200H~784V", "concrete", 1) == 0
    first, second = json.loads(first), json.loads(path.read_text())
    assert second["curve"] == first["curve"]  # no step was trained again
    assert second["train_seconds"] == first["train_seconds"]
    assert second["test"]["nll"] == first["test"]["nll"]  # the same parameters, restored


# Every option that changes a recorded number of the training or the curve is part of the
# row's identity: a rerun with another value is refused, naming it.
CHANGED = [
    ("--lr", "0.01", "lr"),
    ("--curve-images", "50", "curve_images"),
    ("--curve-k", "8", "curve_k"),
    ("--test-images", "150", "test_images"),
    ("--train-images", "250", "train_images"),
    ("--eval-every", "1", "eval_every"),
]


def test_a_resume_with_other_settings_is_refused_naming_them(tmp_path, capsys):
    assert _run(tmp_path, "200H-784V", "concrete", 1) == 0
    before = next(tmp_path.glob("*.json")).read_text()
    for option, value, key in CHANGED:
        assert _run(tmp_path, "200H-784V", "concrete", 1, extra=(option, value)) == 1
        err = capsys.readouterr().err
        assert f"{key} " in err and "there" in err and "--no-resume starts" in err, option
    assert next(tmp_path.glob("*.json")).read_text() == before  # nothing was overwritten


def test_a_time_budget_stops_training_and_the_rerun_goes_on(tmp_path):
    # no minutes at all: one chunk of 2 steps, evaluated, recorded under the steps done
    extra = ("--steps", "6", "--chunk", "2", "--minutes", "0")
    assert _run(tmp_path, "200H~784V", "concrete", 1, extra=extra) == 0
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert (record["steps"], record["steps_requested"]) == (2, 6)
    assert [p["step"] for p in record["curve"]] == [2]
    assert math.isfinite(record["test"]["nll"])
    # the checkpoint resumes towards --steps when the budget allows, in the same file
    assert _run(tmp_path, "200H~784V", "concrete", 1, extra=extra[:4]) == 0
    assert list(tmp_path.glob("*.json")) == [path]
    record = json.loads(path.read_text())
    assert record["steps"] == 6 and [p["step"] for p in record["curve"]] == [2, 4, 6]


WALL_TIMES = ("train_seconds", "seconds_per_step", "cpu_seconds_per_step", "train_cpu_seconds")


def _without_wall_times(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in WALL_TIMES}
    out["first_chunk"] = record["first_chunk"]["steps"]
    out["curve"] = [{k: v for k, v in p.items() if k != "train_seconds"} for p in record["curve"]]
    for split in ("test", "train"):
        out[split] = {k: v for k, v in record[split].items() if k != "seconds"}
    return out


@pytest.mark.slow
def test_the_chunk_changes_no_number(tmp_path):
    # step t's minibatch comes from the key folded with t, however the steps are grouped
    records = []
    for chunk in ("1", "4"):
        out = tmp_path / chunk
        assert _run(out, "200H-784V", "concrete", 1, extra=("--chunk", chunk)) == 0
        records.append(json.loads(next(out.glob("*.json")).read_text()))
    one, four = (_without_wall_times(r) for r in records)
    assert (one.pop("config")["chunk"], four.pop("config")["chunk"]) == (1, 4)
    assert (one.pop("first_chunk"), four.pop("first_chunk")) == (1, 2)  # 2: the curve's
    assert one == four


# A preset of its own: two rows of one model, every bound on one chunk of 100 images.
TWO_ROWS = protocol.Preset(
    "two rows",
    (protocol.Row("200H-784V", "concrete", 1), protocol.Row("200H-784V", "nvil", 1)),
    {"steps": 4, "eval_every": 2, "chunk": 1, "train_images": 200, "test_images": 100,
     "train_eval_images": 100, "eval_k": 4, "curve_k": 4},
)  # fmt: skip


def test_an_interrupted_preset_ends_with_the_uninterrupted_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(protocol.PRESETS, "two-rows", TWO_ROWS)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert run.main(["--preset", "two-rows", "--out", str(whole)]) == 0
    # 1. a time budget of nothing: each row trains one step (between curve points) and is
    # evaluated there
    assert run.main(["--preset", "two-rows", "--out", str(broken), "--minutes", "0"]) == 0
    records = [json.loads(p.read_text()) for p in sorted(broken.glob("*.json"))]
    assert [(r["steps"], r["curve"]) for r in records] == [(1, []), (1, [])]
    # 2. stopped in the second row after its first curve point (step 2), its step 3 lost
    trainer = backends._NumpyroTrainer
    calls, train_steps = [], trainer.run

    def killed_at_step_3(self, n):
        calls.append(self.steps)
        if len(calls) == 6:  # row 1: steps 1, 2, 3 (from 1); row 2: steps 1, 2, 3
            raise KeyboardInterrupt  # Ctrl-C; nothing is saved, as if the process were killed
        return train_steps(self, n)

    monkeypatch.setattr(trainer, "run", killed_at_step_3)
    assert run.main(["--preset", "two-rows", "--out", str(broken)]) == 130
    assert "nvil m=1: interrupted; the same command goes on" in capsys.readouterr().err
    second = json.loads(next(broken.glob("*nvil*.json")).read_text())
    assert second["steps"] == 2 and second["test"] is None  # the file follows the curve
    monkeypatch.setattr(trainer, "run", train_steps)
    # 3. the same command again: the first row is done, the second resumes at step 2
    assert run.main(["--preset", "two-rows", "--out", str(broken)]) == 0
    assert "done already" in capsys.readouterr().err
    names = sorted(p.name for p in whole.glob("*.json"))
    assert names == sorted(p.name for p in broken.glob("*.json")) and len(names) == 2
    for name in names:
        expected = json.loads((whole / name).read_text())
        assert _without_wall_times(json.loads((broken / name).read_text())) == (
            _without_wall_times(expected)
        )


@pytest.mark.slow
@pytest.mark.parametrize("arch, name, m", PYRO_ROWS)
def test_an_interrupted_pyro_row_ends_with_the_uninterrupted_json(tmp_path, arch, name, m):
    # the checkpoint carries Pyro's parameters (the networks' own tensors), Adam's state
    # and both random generators
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    extra = ("--chunk", "1")
    assert _run(whole, arch, name, m, "pyro", extra=extra) == 0
    assert _run(broken, arch, name, m, "pyro", extra=(*extra, "--minutes", "0")) == 0
    assert _run(broken, arch, name, m, "pyro", extra=extra) == 0
    ((expected,), (resumed,)) = ([json.loads(p.read_text()) for p in d.glob("*.json")]
                                 for d in (whole, broken))  # fmt: skip
    assert resumed["first_chunk"]["steps"] == 1
    assert _without_wall_times(resumed) == _without_wall_times(expected)


def test_a_preset_goes_on_after_a_failed_row_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    rows = (*TWO_ROWS.rows, protocol.Row("200H-784V", "rebar", 1))
    monkeypatch.setitem(protocol.PRESETS, "three-rows", protocol.Preset("", rows, TWO_ROWS.options))
    # the first row's checkpoint is cut short; the third row's method raises
    corrupt = tmp_path / "checkpoints" / "200H-784V_concrete_m1_numpyro_seed0.pkl"
    corrupt.parent.mkdir()
    corrupt.write_bytes(pickle.dumps({"trainer": list(range(1000))})[:100])
    build = methods.build

    def failing_rebar(backend, name, *args):
        if name == "rebar":
            raise RuntimeError("this estimator fails")
        return build(backend, name, *args)

    monkeypatch.setattr(methods, "build", failing_rebar)
    assert run.main(["--preset", "three-rows", "--out", str(tmp_path)]) == 1
    assert [p.name for p in tmp_path.glob("*.json")] == ["200H-784V_nvil_m1_numpyro_seed0.json"]
    err = capsys.readouterr().err
    summary = err[err.index("2 of 3 rows failed:") :].splitlines()
    assert summary[1].startswith("- 200H-784V concrete m=1: the checkpoint")
    assert str(corrupt) in summary[1] and "--no-resume starts" in summary[1]
    assert summary[2] == "- 200H-784V rebar m=1: RuntimeError: this estimator fails"


class Interrupt(BaseException):
    """Stands for a process killed mid-write: nothing after it runs."""


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "row.pkl"
    store.save_checkpoint(path, {"steps": 1})

    def killed(fd):
        raise Interrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(Interrupt):
        store.save_checkpoint(path, {"steps": 2})
    assert store.load_checkpoint(path, ("steps",)) == {"steps": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["row.pkl"]  # no temporary file left


def test_progress_lines_show_steps_rate_curve_and_time_left():
    now = [0.0]
    stream = io.StringIO()
    progress = progress_module.Progress("row", 0, 1000, every=60, stream=stream,
                                        clock=lambda: now[0])  # fmt: skip
    for step in range(100, 1001, 100):  # a chunk of 100 steps each 10 s, the first 40 s
        now[0] += 40 if step == 100 else 10
        if step % 200 == 0:
            progress.point(step, 150.0 - step / 100)
        progress.steps(step)
    progress.close()
    lines = stream.getvalue().splitlines()
    # after the first chunk; then a minute later (step 700); then the end
    assert [line[: line.index(")") + 1] for line in lines] == [
        "row: step 100 of 1,000 (10%)",
        "row: step 700 of 1,000 (70%)",
        "row: step 1,000 of 1,000 (100%)",
    ]
    assert lines[0].endswith("), first chunk 40 s (with compilation)")  # no rate from it
    later_rate = 600 / 60
    assert f"{later_rate:.1f} steps/s, curve 144.00 nats at step 600" in lines[1]
    assert f"about {progress_module.duration(300 / later_rate)} of training left" in lines[1]
    assert "left" not in lines[2]


def test_table_and_plot_show_ours_beside_the_papers(tmp_path):
    assert _run(tmp_path, "200H-784V", "concrete", 1) == 0
    records = table.load_records([tmp_path])
    text = table.tables(records)
    ours = f"{records[0]['test']['nll']:.2f}"
    assert "| 200H-784V" in text and ours in text and "107.3" in text and "107.5" in text
    assert "reference data typed from" in text
    # a test bound on a subset of the test set says on how many images
    assert f"{ours} ± {records[0]['test']['se']:.2f} (200 images)" in text
    assert "on the whole test set unless a number of images is stated" in text
    training = {**records[0], "test": None, "train": None, "steps": 2}
    assert "Still training (no final bound yet): 200H-784V Concrete m = 1 (numpyro), step 2 " \
        "of 4." in table.tables([*records, training])  # fmt: skip
    from benchmarks.paper import plot

    out = plot.plot([*records, training], tmp_path / "figure.png")
    assert out.stat().st_size > 1000


def test_a_method_is_refused_where_it_is_not_defined():
    backend = run.get_backend("numpyro")
    with pytest.raises(ValueError, match=r"not defined for m = 1 \(only for m >= 2\)"):
        methods.build(backend, "vimco", 1, None, None, "density")
    with pytest.raises(ValueError, match="unknown method"):
        methods.build(backend, "reinforce", 1, None, None, "density")


ROW = ["--arch", "200H-784V", "--steps", "4"]
# (arguments, what the one-line error says): each refused before the data is loaded
BAD_OPTIONS = [
    ([*ROW, "--chunk", "0"], "argument --chunk: must be at least 1, got 0"),
    (["--arch", "200H-784V", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["--arch", "200H-784V", "--steps", "-5"], "argument --steps: must be at least 1, got -5"),
    (["--arch", "200H-784V"], "argument --steps: required for a single row"),
    ([*ROW, "--eval-k", "0"], "argument --eval-k: must be at least 1, got 0"),
    ([*ROW, "--eval-every", "0"], "argument --eval-every: must be at least 1, got 0"),
    ([*ROW, "--lr", "0"], "argument --lr: must be above 0, got '0'"),
    ([*ROW, "--lr", "nan"], "argument --lr: must be finite, got 'nan'"),
    ([*ROW, "--test-images", "0"], "argument --test-images: must be at least 1, got 0"),
    ([*ROW, "--curve-k", "2.5"], "argument --curve-k: expected a whole number, got '2.5'"),
    ([*ROW, "--threads", "0"], "argument --threads: must be at least 1, got 0"),
    ([*ROW, "--devices", "0"], "argument --devices: must be at least 1, got 0"),
    ([*ROW, "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ([*ROW, "--minutes", "-1"], "argument --minutes: must be at least 0, got '-1'"),
    ([*ROW, "--m", "0"], "argument --m: must be at least 1, got 0"),
    ([*ROW, "--method", "vimco"], "method 'vimco' is not defined for m = 1 (only for m >= 2)"),
    ([*ROW, "--method", "nvil", "--m", "5"], "method 'nvil' is not defined for m = 5"),
    (["--arch", "200H-200H-784V", "--steps", "4", "--method", "disarm"],
     "method 'disarm' needs the guide's sites independent given the data"),
    (["--preset", "cpu", "--shard", "abc"], "argument --shard: expected K/N"),
    (["--preset", "cpu", "--shard", "2/2"], "argument --shard: needs 0 <= K < N, got '2/2'"),
    (["--preset", "cpu", "--shard", "20/30"], "--shard: 20/30 selects none of the preset's"),
    ([*ROW, "--shard", "0/2"], "argument --shard: splits the rows of a --preset"),
    (["--preset", "cpu", "--method", "nvil"], "argument --method: sets a single row"),
    ([*ROW, "--test-images", "200", "--curve-images", "300"],
     "argument --curve-images: 300 is more than the 200 test images"),
    ([*ROW, "--train-images", "200", "--train-eval-images", "300"],
     "argument --train-eval-images: 300 is more than the 200 training images"),
    ([*ROW, "--backend", "pyro", "--devices", "2"], "the Pyro backend trains on one device"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_a_bad_option_ends_with_a_one_line_error_before_any_work(argv, message, tmp_path,
                                                                 monkeypatch, capsys):  # fmt: skip
    def no_work(*args, **kwargs):
        pytest.fail("the data was loaded")

    for backend in (backends.NumpyroBackend, backends.PyroBackend):
        monkeypatch.setattr(backend, "load", no_work)
    with pytest.raises(SystemExit) as exit_:
        run.main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert message in line
    assert not any(tmp_path.iterdir())


def test_a_subset_larger_than_the_data_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run.main([*ROW, "--test-images", "20000", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "argument --test-images: 20000 is more than the 10000 test images" in err


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


def test_more_devices_than_jax_sees_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run.main([*ROW, "--devices", "64", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert re.search(r"error: --devices must lie in \[1, \d+\].*got 64", capsys.readouterr().err)
