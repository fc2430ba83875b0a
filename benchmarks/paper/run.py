"""Train and evaluate rows of the paper's tables; one JSON per run.

    python -m benchmarks.paper.run --arch 200H~784V --method concrete --m 1 --steps 100000
    python -m benchmarks.paper.run --preset cpu          # the rows that matter most
    python -m benchmarks.paper.run --preset gpu          # the paper's 10^7-step protocol
    python -m benchmarks.paper.run --preset gpu --minutes 60   # as many steps as an hour gives
    python -m benchmarks.paper.run --list                # architectures, methods, presets

Run from the repository root with ``CONCRETE_MNIST=/path/to/binarized_mnist.npz``.  A
run trains with Adam on minibatches of 64 (the protocol, :mod:`.protocol`), records a
learning curve (the test bound on a fixed subset of ``--curve-images`` test images with
``--curve-k`` samples, every ``--eval-every`` steps), saves a checkpoint at each curve
point (``<out>/checkpoints/``; rerunning the same command resumes from it), and ends with
``discrete_bound`` (``--eval-k`` samples) on every test image and on the training images
(all, or a fixed random subset of ``--train-eval-images``), each with a standard error
over chunks of 100 images.  The JSON (``<out>/<run>.json``) holds the configuration, the
versions, the device, the wall times, the bounds and the curve.  ``--train-images`` and
``--test-images`` restrict the data (fixed random subsets: the file is ordered by digit),
for smoke tests.  ``--devices N`` (NumPyro) splits every minibatch over N devices (the
one-device numbers, to float32 rounding).  A method that this checkout does not provide
fails its row with a message saying so; a preset goes on with the other rows and exits
non-zero at the end.
"""

import argparse
import dataclasses
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import methods
from .backends import get_backend, pixel_logits
from .protocol import ARCHITECTURES, BATCH, EVAL_K, PRESETS, Row, paper_number

__all__ = ["main", "run_row"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[2]
#: options that neither the command line nor the preset sets
DEFAULTS = {"curve_images": 1000, "curve_k": 100, "chunk": 1000}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.paper.run", description=__doc__.split("\n\n")[0]
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", choices=sorted(ARCHITECTURES), help="one row: the model")
    what.add_argument("--preset", choices=sorted(PRESETS), help="a list of rows and a budget")
    what.add_argument("--list", action="store_true", help="print what can be run and exit")
    parser.add_argument("--method", choices=sorted(methods.METHODS), default="concrete")
    parser.add_argument("--m", type=int, default=1, help="samples per objective (1, 5, 50)")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    parser.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    parser.add_argument("--lr", type=float, help="Adam's rate (default: preset / paper's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-k", type=int, help="samples of the final bound")
    parser.add_argument("--eval-every", type=int, help="steps between curve points")
    parser.add_argument("--curve-images", type=int, help="test images of the curve")
    parser.add_argument("--curve-k", type=int, help="samples of the curve's bound")
    parser.add_argument("--train-images", type=int, help="train on a random subset")
    parser.add_argument("--test-images", type=int, help="evaluate on a random test subset")
    parser.add_argument("--train-eval-images", type=int, help="training images evaluated")
    parser.add_argument("--chunk", type=int, help="steps per jitted scan")
    parser.add_argument(
        "--minutes",
        type=float,
        help="stop training after this many minutes of it in this call (at the end of a "
        "chunk, at least one) and evaluate; the JSON records the steps done, and the same "
        "command resumes towards --steps",
    )
    parser.add_argument(
        "--shard",
        help="K/N: run only rows K, K+N, K+2N, ... of a preset (N processes share the cores)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch and XLA (default 1: on a shared machine more threads "
        "oversubscribe the cores and run many times slower)",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="NumPyro: split each minibatch over this many devices (data-parallel; the "
        "one-device numbers up to float32 rounding). Pyro: 1 only",
    )
    parser.add_argument("--out", type=Path, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints")
    return parser.parse_args(argv)


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


def run_id(row: Row, backend: str, steps: int, seed: int) -> str:
    arch = row.arch.replace("~", "t")  # "~" (tanh layers) kept out of file names
    return f"{arch}_{row.method}_m{row.m}_{backend}_{steps}steps_seed{seed}"


def run_row(row: Row, args: argparse.Namespace, backend, data: dict) -> dict:
    """Train and evaluate one row; writes and returns its JSON record."""
    from tqdm import tqdm

    arch = ARCHITECTURES[row.arch]
    steps = args.steps
    lr = args.lr or arch.lr
    eval_k = args.eval_k or EVAL_K[arch.table]
    eval_every = min(args.eval_every or max(1, steps // 10), steps)
    train, test = data["train"], data["test"]
    half = 784 // 2 if arch.table == "structured" else None
    if backend.name == "pyro":
        backend.torch.manual_seed(args.seed)  # the networks' initialisation
        backend.pyro.clear_param_store()
    problem = backend.problem(arch, pixel_logits(train, half))
    model, guide, loss = methods.build(
        backend, row.method, row.m, problem.model, problem.guide, arch.table
    )
    trainer = backend.trainer(model, guide, loss, lr, args.seed, train)
    name = run_id(row, backend.name, steps, args.seed)
    checkpoint = args.out / "checkpoints" / f"{name}.pkl"
    # what a checkpoint must share with this run to be resumed by it
    identity = {"lr": lr, "train_images": args.train_images, "batch": BATCH}
    curve, train_seconds, cpu_seconds, first_chunk = [], 0.0, 0.0, None
    if checkpoint.exists() and not args.no_resume:
        with checkpoint.open("rb") as f:
            saved = pickle.load(f)
        if saved.get("identity") != identity:
            raise SystemExit(
                f"{checkpoint} was trained with {saved.get('identity')}, this run asks for "
                f"{identity}: pass --no-resume to start afresh, or another --out"
            )
        trainer.load_state(saved["trainer"])
        curve, first_chunk = saved["curve"], saved["first"]
        train_seconds, cpu_seconds = saved["seconds"], saved["cpu_seconds"]
    curve_images = test[: args.curve_images]
    bar = tqdm(total=steps, initial=trainer.steps, desc=name, unit="step", mininterval=5)
    losses = []
    budget = math.inf if args.minutes is None else 60 * args.minutes
    trained = 0.0  # seconds of training in this call, against the budget
    while trainer.steps < steps and (trained == 0.0 or trained < budget):
        n = min(args.chunk, steps - trainer.steps, eval_every - trainer.steps % eval_every)
        start, cpu_start = time.perf_counter(), time.process_time()
        losses.append(trainer.run(n))
        elapsed = time.perf_counter() - start
        train_seconds += elapsed
        trained += elapsed
        cpu_elapsed = time.process_time() - cpu_start
        cpu_seconds += cpu_elapsed
        first_chunk = first_chunk or (n, elapsed, cpu_elapsed)
        bar.update(n)
        done = trainer.steps == steps or trained >= budget
        if trainer.steps % eval_every == 0 or done:
            point = _evaluate(trainer, problem.model, problem.guide, curve_images,
                              args.curve_k, args.seed + trainer.steps)  # fmt: skip
            curve.append(
                {
                    "step": trainer.steps,
                    "test_nll": point["nll"],
                    "loss": float(np.mean(losses)),
                    "train_seconds": train_seconds,
                }
            )
            bar.set_postfix(test_nll=f"{point['nll']:.2f}")
            losses = []
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            with checkpoint.open("wb") as f:
                pickle.dump(
                    {"trainer": trainer.state(), "curve": curve, "seconds": train_seconds,
                     "cpu_seconds": cpu_seconds, "first": first_chunk, "identity": identity}, f,
                )  # fmt: skip
    bar.close()
    requested, steps = steps, trainer.steps
    test_eval = _evaluate(trainer, problem.model, problem.guide, test, eval_k, args.seed + 1)
    train_subset = _subset(train, args.train_eval_images, args.seed + 2)
    train_eval = _evaluate(
        trainer, problem.model, problem.guide, train_subset, eval_k, args.seed + 3
    )
    # per step after the first chunk, which pays for compilation (all steps if it is all)
    later = steps - first_chunk[0]
    per_step = (train_seconds - first_chunk[1]) / later if later else train_seconds / steps
    cpu_per_step = (cpu_seconds - first_chunk[2]) / later if later else cpu_seconds / steps
    record = {
        "table": arch.table,
        "arch": row.arch,
        "method": row.method,
        "label": methods.METHODS[row.method].label,
        "m": row.m,
        "backend": backend.name,
        "steps": steps,
        "steps_requested": requested,
        "config": {
            **{k: (_portable(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "lr": lr,
            "batch": BATCH,
            "eval_k": eval_k,
            "eval_every": eval_every,
            "architecture": dataclasses.asdict(arch),
        },
        "versions": _versions(backend),
        "device": backend.device(),
        "train_seconds": train_seconds,
        "seconds_per_step": per_step,
        "cpu_seconds_per_step": cpu_per_step,
        "train_cpu_seconds": cpu_seconds,
        "first_chunk": dict(zip(("steps", "seconds", "cpu_seconds"), first_chunk, strict=True)),
        "test": test_eval,
        "train": train_eval,
        "curve": curve,
        "curve_eval": {"images": len(curve_images), "k": args.curve_k},
        "paper": paper_number(row.arch, row.method, row.m),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{run_id(row, backend.name, steps, args.seed)}.json").write_text(
        json.dumps(record, indent=1)
    )
    return record


def _portable(path: Path) -> str:
    """``path`` as recorded in a result: relative to the repository when inside it, so that
    a record names no machine's directories."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


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


def main(argv=None) -> int:
    args = parse(argv)
    if args.list:
        _list()
        return 0
    options = dict(DEFAULTS)
    if args.preset:
        rows = PRESETS[args.preset].rows
        options.update(PRESETS[args.preset].options)
    elif args.steps is None:
        raise SystemExit("--steps is required for a single row (or use --preset)")
    else:
        rows = (Row(args.arch, args.method, args.m),)
    if args.shard:
        index, count = (int(v) for v in args.shard.split("/"))
        if not 0 <= index < count:
            raise SystemExit(f"--shard K/N needs 0 <= K < N, got {args.shard!r}")
        rows = rows[index::count]
    out_subdir = options.pop("out_subdir", None)
    for key, value in options.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = DEFAULT_OUT / out_subdir if out_subdir else DEFAULT_OUT
    _set_threads(args.threads)
    try:
        backend = get_backend(args.backend, args.devices)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    data = backend.load()
    data = {
        "train": _subset(data["train"], args.train_images, args.seed),
        "test": _subset(data["test"], args.test_images, args.seed + 1),
    }
    for row in rows:
        record = run_row(row, args, backend, data)
        print(
            f"{row.arch} {record['label']} m={row.m} ({backend.name}, {record['steps']} steps): "
            f"test {_nats(record['test'])}, train {_nats(record['train'])} nats; "
            f"{1e3 * record['seconds_per_step']:.2f} ms/step"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    sys.exit(main())
