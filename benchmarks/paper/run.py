"""Train and evaluate rows of the paper's tables; one JSON per row, updated as it goes.

    python -m benchmarks.paper.run --arch 200H~784V --method concrete --m 1 --steps 100000
    python -m benchmarks.paper.run --preset cpu          # the rows that matter most
    python -m benchmarks.paper.run --preset gpu          # the paper's 10^7-step protocol
    python -m benchmarks.paper.run --preset gpu --minutes 60   # as many steps as an hour gives
    python -m benchmarks.paper.run --list                # architectures, methods, presets

Run from the repository root with ``CONCRETE_MNIST=/path/to/binarized_mnist.npz``.  Every
option is checked before any work (:mod:`.options`: argparse's one-line errors, exit
status 2).  A row trains with Adam on minibatches of 64 (:mod:`.protocol`), records a
learning curve (the test bound on a fixed subset of ``--curve-images`` test images with
``--curve-k`` samples, at every multiple of ``--eval-every`` steps) and ends with
``discrete_bound`` (``--eval-k`` samples) on the test images and on the training images
(all, or a fixed random subset of ``--train-eval-images``), each with a standard error over
chunks of 100 images.  ``--train-images`` and ``--test-images`` restrict the data (fixed
random subsets: the file is ordered by digit).  ``--devices N`` (NumPyro) splits every
minibatch over N devices (the one-device numbers, to float32 rounding).

One row, one result file: ``<out>/<arch>_<method>_m<m>_<backend>_seed<seed>.json`` (``~``
written ``t``), rewritten whole (:mod:`.store`) at every curve point (``"test": null``
while the row trains) and after the final evaluation; it holds the settings, the versions,
the device, the wall and CPU times, the bounds and the curve.  At every curve point, and
where a call stops training (``--minutes``), the row saves a checkpoint
(``<out>/checkpoints/``).  Rerunning a command goes on where it stopped, and ends with the
JSON an uninterrupted run writes, wall times aside: a finished row is skipped, a row with a
checkpoint resumes from it.  A resume must share the row's :func:`identity`, every setting
that changes a recorded number of its training or curve; a larger ``--steps`` continues a
row, and the final evaluation (``--eval-k``, ``--train-eval-images``) is redone by every
call that does not skip the row.  Anything else is refused with a message that names what
differs; ``--no-resume`` starts over.

A row that fails (a refused resume, an exception in training) does not stop the others: the
command runs every row, then prints which failed and why and exits with status 1.  Ctrl-C
ends the command (status 130); the same command goes on from each row's last checkpoint.  Progress
lines go to stderr (:mod:`.progress`), one line per finished row to stdout.
"""

import argparse
import dataclasses
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import methods, options, store
from .backends import get_backend, pixel_logits
from .progress import Progress
from .protocol import ARCHITECTURES, BATCH, EVAL_K, PRESETS, Row, paper_number
from .store import ResumeError

__all__ = ["identity", "main", "row_id", "run_row"]

#: what a checkpoint holds
CHECKPOINT_KEYS = ("identity", "trainer", "curve", "pending", "times")


def _subset(images: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of ``n`` rows (all rows, shuffled the same way, if ``None``)."""
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[:n]] if n is not None else images[order]


def _mean_se(chunk_means: np.ndarray, sizes: np.ndarray) -> tuple[float, float]:
    """Image-weighted mean of chunk means and its standard error over chunks."""
    n, c = sizes.sum(), len(sizes)
    mean = float((sizes * chunk_means).sum() / n)
    if c < 2:
        return mean, math.nan
    var = (sizes**2 * (chunk_means - mean) ** 2).sum() / n**2 * c / (c - 1)
    return mean, float(math.sqrt(var))


def _evaluate(trainer, model, guide, images, k, seed) -> dict:
    start = time.perf_counter()
    chunk_means = trainer.bounds(model, guide, images, k, seed)
    sizes = np.array([min(100, len(images) - s) for s in range(0, len(images), 100)])
    mean, se = _mean_se(chunk_means, sizes)
    return {
        "nll": -mean,
        "se": None if math.isnan(se) else se,
        "images": len(images),
        "k": k,
        "seconds": time.perf_counter() - start,
    }


def _nats(entry: dict) -> str:
    """``nll +- se`` (``se`` is ``None`` for a single chunk)."""
    return f"{entry['nll']:.2f}" + ("" if entry["se"] is None else f" +- {entry['se']:.2f}")


def _versions(backend) -> dict:
    import importlib.metadata

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "concrete-ppl": importlib.metadata.version("concrete-ppl"),
        "git": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **backend.versions(),
    }


def row_id(row: Row, backend: str, seed: int) -> str:
    """The row's file name, without extension (``~``, the tanh layers, written ``t``)."""
    arch = row.arch.replace("~", "t")
    return f"{arch}_{row.method}_m{row.m}_{backend}_seed{seed}"


def identity(row: Row, args: argparse.Namespace, backend: str) -> dict:
    """The settings that change a recorded number of ``row``'s training or curve: what a
    checkpoint must share with a run to be resumed by it.  ``--chunk`` changes none (step
    ``t``'s minibatch depends on ``t`` alone), nor does ``--steps`` before the steps done;
    the final evaluation is redone by every call."""
    arch = ARCHITECTURES[row.arch]
    return {
        "arch": row.arch,
        "method": row.method,
        "m": row.m,
        "backend": backend,
        "seed": args.seed,
        "lr": arch.lr if args.lr is None else args.lr,
        "batch": BATCH,
        "train_images": args.train_images,
        "test_images": args.test_images,
        "eval_every": args.eval_every,
        "curve_images": args.curve_images,
        "curve_k": args.curve_k,
        "devices": args.devices,  # the order of float32 sums
        "threads": args.threads,  # the order of sums in threaded kernels
    }


def _finished(record: dict | None, wanted: dict, final: dict, steps: int) -> bool:
    """Whether ``record`` is this row's, trained to ``steps`` and evaluated as asked."""
    return (
        record is not None
        and record.get("identity") == wanted
        and record["test"] is not None
        and record["steps"] == steps
        and all(record["config"][key] == value for key, value in final.items())
    )


def _saved_state(checkpoint: Path, result: dict | None, result_path: Path, wanted: dict,
                 steps: int) -> dict | None:  # fmt: skip
    """The checkpoint to resume from, ``None`` to start afresh, or a ``ResumeError``."""
    if checkpoint.exists():
        saved = store.load_checkpoint(checkpoint, CHECKPOINT_KEYS)
        differ = store.differences(saved["identity"], wanted)
        if differ:
            raise ResumeError(
                f"the checkpoint {checkpoint} was made with other settings ({differ}); "
                f"{store.START_OVER}"
            )
        if saved["trainer"]["steps"] > steps:
            raise ResumeError(
                f"the checkpoint {checkpoint} is at step {saved['trainer']['steps']:,}, past "
                f"--steps {steps:,}; {store.START_OVER}"
            )
        return saved
    if result is not None:
        why = (
            store.differences(result["identity"], wanted) or "no checkpoint to go on from"
            if "identity" in result
            else "an earlier version of the runner wrote it"
        )
        raise ResumeError(
            f"{result_path} holds a run of this row that this one cannot go on with ({why}); "
            f"{store.START_OVER}"
        )
    return None


def _new_times() -> dict:
    """Wall and CPU seconds of training: all, and after each call's first chunk."""
    keys = ("seconds", "cpu_seconds", "warm_seconds", "warm_cpu_seconds", "warm_steps")
    return {**dict.fromkeys(keys, 0), "first": None}


def _count_chunk(times: dict, n: int, seconds: float, cpu_seconds: float, warm: bool) -> None:
    """Add a chunk of ``n`` steps; ``warm``: not the first of its call (which compiles)."""
    times["seconds"] += seconds
    times["cpu_seconds"] += cpu_seconds
    times["first"] = times["first"] or (n, seconds, cpu_seconds)
    if warm:
        times["warm_seconds"] += seconds
        times["warm_cpu_seconds"] += cpu_seconds
        times["warm_steps"] += n


def _times(times: dict, steps: int) -> dict:
    """The record's timing fields: per step after each call's first chunk, which pays for
    compilation (over all steps if no other chunk ran)."""
    warm = times["warm_steps"]
    return {
        "train_seconds": times["seconds"],
        "seconds_per_step": times["warm_seconds"] / warm if warm else times["seconds"] / steps,
        "cpu_seconds_per_step": (
            times["warm_cpu_seconds"] / warm if warm else times["cpu_seconds"] / steps
        ),
        "train_cpu_seconds": times["cpu_seconds"],
        "first_chunk": dict(zip(("steps", "seconds", "cpu_seconds"), times["first"], strict=True)),
    }


def run_row(row: Row, args: argparse.Namespace, backend, data: dict) -> dict:
    """Train and evaluate one row, resuming from its checkpoint; writes its JSON record as it
    goes and returns the last one (the saved one, untouched, if the row is done already)."""
    arch = ARCHITECTURES[row.arch]
    name = row_id(row, backend.name, args.seed)
    result_path = args.out / f"{name}.json"
    checkpoint = args.out / "checkpoints" / f"{name}.pkl"
    wanted = identity(row, args, backend.name)
    final = {
        "eval_k": EVAL_K[arch.table] if args.eval_k is None else args.eval_k,
        "train_eval_images": args.train_eval_images,
    }
    saved = None
    if not args.no_resume:
        previous = store.read_record(result_path)
        if _finished(previous, wanted, final, args.steps):
            print(f"{name}: done already ({result_path}; --no-resume runs it again)",
                  file=sys.stderr)  # fmt: skip
            return previous
        saved = _saved_state(checkpoint, previous, result_path, wanted, args.steps)
    else:  # so that no older checkpoint outlives the new start
        checkpoint.unlink(missing_ok=True)

    train, test = data["train"], data["test"]
    half = 784 // 2 if arch.table == "structured" else None
    if backend.name == "pyro":
        backend.torch.manual_seed(args.seed)  # the networks' initialisation
        backend.pyro.clear_param_store()
    problem = backend.problem(arch, pixel_logits(train, half))
    model, guide, loss = methods.build(
        backend, row.method, row.m, problem.model, problem.guide, arch.table
    )
    trainer = backend.trainer(model, guide, loss, wanted["lr"], args.seed, train)
    if saved is None:
        curve, pending, times = [], np.zeros(0), _new_times()
    else:
        trainer.load_state(saved["trainer"])
        curve, pending, times = saved["curve"], saved["pending"], saved["times"]
    curve_images = test[: args.curve_images]
    record = {
        "table": arch.table,
        "arch": row.arch,
        "method": row.method,
        "label": methods.METHODS[row.method].label,
        "m": row.m,
        "backend": backend.name,
        "steps_requested": args.steps,
        "identity": wanted,
        "config": {
            **wanted,
            "steps": args.steps,
            **final,
            "chunk": args.chunk,
            "architecture": dataclasses.asdict(arch),
        },
        "versions": _versions(backend),
        "device": backend.device(),
        "curve_eval": {"images": len(curve_images), "k": args.curve_k},
        "paper": paper_number(row.arch, row.method, row.m),
    }

    def save() -> None:
        state = {"identity": wanted, "trainer": trainer.state(), "curve": curve,
                 "pending": pending, "times": times}  # fmt: skip
        store.save_checkpoint(checkpoint, state)

    def write(test_eval: dict | None, train_eval: dict | None) -> dict:
        steps = trainer.steps
        out = {**record, "steps": steps, **_times(times, steps), "test": test_eval,
               "train": train_eval, "curve": curve}  # fmt: skip
        store.write_record(result_path, out)
        return out

    progress = Progress(f"{row.arch} {row.method} m={row.m} {backend.name}", trainer.steps,
                        args.steps)  # fmt: skip
    budget = math.inf if args.minutes is None else 60 * args.minutes
    trained, chunks, saved_steps = 0.0, 0, trainer.steps
    while trainer.steps < args.steps and (chunks == 0 or trained < budget):
        n = min(args.chunk, args.steps - trainer.steps,
                args.eval_every - trainer.steps % args.eval_every)  # fmt: skip
        start, cpu_start = time.perf_counter(), time.process_time()
        pending = np.concatenate([pending, trainer.run(n)])
        elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu_start
        trained += elapsed
        _count_chunk(times, n, elapsed, cpu_elapsed, warm=chunks > 0)
        chunks += 1
        if trainer.steps % args.eval_every == 0:
            point = _evaluate(trainer, problem.model, problem.guide, curve_images,
                              args.curve_k, args.seed + trainer.steps)  # fmt: skip
            curve.append(
                {
                    "step": trainer.steps,
                    "test_nll": point["nll"],
                    "loss": float(np.mean(pending, dtype=np.float64)),
                    "train_seconds": times["seconds"],
                }
            )
            pending = pending[:0]
            progress.point(trainer.steps, point["nll"])
            save()
            saved_steps = trainer.steps
            write(None, None)
        progress.steps(trainer.steps)
    progress.close()
    if trainer.steps != saved_steps:  # stopped between curve points: keep the steps
        save()
    test_eval = _evaluate(trainer, problem.model, problem.guide, test, final["eval_k"],
                          args.seed + 1)  # fmt: skip
    train_subset = _subset(train, args.train_eval_images, args.seed + 2)
    train_eval = _evaluate(
        trainer, problem.model, problem.guide, train_subset, final["eval_k"], args.seed + 3
    )
    return write(test_eval, train_eval)


def _set_threads(threads: int) -> None:
    """torch's intra-op pool, and XLA's when jax is not imported yet."""
    import torch

    torch.set_num_threads(threads)
    if "jax" not in sys.modules and "intra_op_parallelism_threads" not in os.environ.get(
        "XLA_FLAGS", ""
    ):
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen="
            f"{str(threads > 1).lower()} intra_op_parallelism_threads={threads}"
        ).strip()


def _list() -> None:
    print("architectures:", ", ".join(ARCHITECTURES))
    for name, method in methods.METHODS.items():
        print(f"method {name}: {method.label}")
    for name, preset in PRESETS.items():
        print(f"preset {name} {preset.options}: {preset.description}")
        for row in preset.rows:
            print(f"    {row.arch} {row.method} m={row.m}")


def _row_name(row: Row) -> str:
    return f"{row.arch} {row.method} m={row.m}"


def main(argv=None) -> int:
    """The command line; 0 if every row ran, 1 if one failed, 2 if the options are refused,
    130 if interrupted (Ctrl-C)."""
    parser = options.parser(__doc__.split("\n\n")[0])
    args = parser.parse_args(argv)
    if args.list:
        _list()
        return 0
    rows = options.resolve(parser, args)
    _set_threads(args.threads)
    try:
        backend = get_backend(args.backend, args.devices)
    except ValueError as error:
        parser.error(str(error))
    try:
        data = backend.load()
    except FileNotFoundError as error:
        parser.error(str(error))
    options.check_data(parser, args, {split: len(data[split]) for split in ("train", "test")})
    data = {
        "train": _subset(data["train"], args.train_images, args.seed),
        "test": _subset(data["test"], args.test_images, args.seed + 1),
    }
    failed = []
    for row in rows:
        try:
            record = run_row(row, args, backend, data)
        except KeyboardInterrupt:  # Ctrl-C: the steps since the last checkpoint are lost
            print(f"{_row_name(row)}: interrupted; the same command goes on from its last "
                  "checkpoint", file=sys.stderr)  # fmt: skip
            return 130
        except ResumeError as error:
            failed.append((row, str(error)))
            print(f"{_row_name(row)} failed: {error}", file=sys.stderr)
        except Exception as error:  # any other failure of one row: the others still run
            traceback.print_exc()
            failed.append((row, f"{type(error).__name__}: {error}"))
        else:
            print(
                f"{row.arch} {record['label']} m={row.m} ({backend.name}, "
                f"{record['steps']} steps): test {_nats(record['test'])}, "
                f"train {_nats(record['train'])} nats; "
                f"{1e3 * record['seconds_per_step']:.2f} ms/step",
                flush=True,
            )
    if failed:
        print(f"{len(failed)} of {len(rows)} rows failed:", file=sys.stderr)
        for row, why in failed:
            print(f"- {_row_name(row)}: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    sys.exit(main())
