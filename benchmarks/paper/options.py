"""The runner's command line: every option checked, and the rows resolved, before any work.

A value that cannot be used ends the command at once with argparse's one-line error, which
names the option and the value (exit status 2): counts below 1, a learning rate that is not
a positive finite number, a negative or non-finite time budget, a malformed ``--shard``, a
method that is not defined for the row's m or model, more curve or evaluation images than
the run evaluates or trains on.  The preset's options fill what the command line leaves
unset; :data:`DEFAULTS` fill the rest.  Two checks need what only the backend or the data
file knows (how many devices JAX sees, how many images the file holds); :func:`check_data`
does the second right after loading, before any row is built.
"""

import argparse
import math
from pathlib import Path

from . import methods
from .protocol import ARCHITECTURES, PRESETS, Row

__all__ = ["DEFAULTS", "DEFAULT_OUT", "check_data", "parser", "resolve"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
#: options that neither the command line nor the preset sets; the curve's images are at
#: most the test images evaluated
DEFAULTS = {"curve_images": 1000, "curve_k": 100, "chunk": 1000}


def _at_least(low: int):
    """An argparse type: a whole number of at least ``low``."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return whole


#: a whole number of at least 1
_count = _at_least(1)
#: a whole number of at least 0 (numpy's generators refuse negative seeds)
_seed = _at_least(0)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _rate(text: str) -> float:
    """A finite number above 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def _minutes(text: str) -> float:
    """A finite number of at least 0 (0: one chunk of steps)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    """``K/N`` with ``0 <= K < N``."""
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit()):
        raise argparse.ArgumentTypeError(f"expected K/N (for example 0/2), got {text!r}")
    if not int(index) < int(count):
        raise argparse.ArgumentTypeError(f"needs 0 <= K < N, got {text!r}")
    return int(index), int(count)


def parser(description: str) -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.paper.run``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper.run", description=description)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", choices=sorted(ARCHITECTURES), help="one row: the model")
    what.add_argument("--preset", choices=sorted(PRESETS), help="a list of rows and a budget")
    what.add_argument("--list", action="store_true", help="print what can be run and exit")
    p.add_argument("--method", choices=sorted(methods.METHODS), help="default concrete")
    p.add_argument("--m", type=_count, help="samples per objective (1, 5, 50; default 1)")
    p.add_argument("--steps", type=_count, help="training steps (default: the preset's)")
    p.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    p.add_argument("--lr", type=_rate, help="Adam's rate (default: the preset's / paper's)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--eval-k", type=_count, help="samples of the final bound")
    p.add_argument(
        "--eval-every",
        type=_count,
        help="steps between curve points (at most --steps; default a tenth of --steps)",
    )
    p.add_argument("--curve-images", type=_count, help="test images of the curve")
    p.add_argument("--curve-k", type=_count, help="samples of the curve's bound")
    p.add_argument("--train-images", type=_count, help="train on a random subset")
    p.add_argument("--test-images", type=_count, help="evaluate on a random test subset")
    p.add_argument("--train-eval-images", type=_count, help="training images evaluated")
    p.add_argument("--chunk", type=_count, help="steps per jitted scan (changes no number)")
    p.add_argument(
        "--minutes",
        type=_minutes,
        help="stop training after this many minutes of it in this call (at the end of a "
        "chunk, at least one) and evaluate; the JSON records the steps done, and the same "
        "command resumes towards --steps",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        help="K/N: run only rows K, K+N, K+2N, ... of a preset (N processes share the cores)",
    )
    p.add_argument(
        "--threads",
        type=_count,
        default=1,
        help="CPU threads for torch and XLA (default 1: on a shared machine more threads "
        "oversubscribe the cores and run many times slower)",
    )
    p.add_argument(
        "--devices",
        type=_count,
        default=1,
        help="NumPyro: split each minibatch over this many devices (data-parallel; the "
        "one-device numbers up to float32 rounding). Pyro: 1 only",
    )
    p.add_argument("--out", type=Path, help=f"results folder (default {DEFAULT_OUT})")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start every row over: its checkpoint is deleted, its JSON overwritten",
    )
    return p


def resolve(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Row, ...]:
    """The rows to run; fills ``args`` from the preset and :data:`DEFAULTS` and checks the
    options against each other, ending with ``p.error`` where they do not fit."""
    if args.preset:
        for option in ("method", "m"):
            if getattr(args, option) is not None:
                p.error(f"argument --{option}: sets a single row (--arch); a preset has its rows")
        preset = PRESETS[args.preset]
        rows, settings = preset.rows, {**DEFAULTS, **preset.options}
    else:
        args.method = "concrete" if args.method is None else args.method
        args.m = 1 if args.m is None else args.m
        if args.steps is None:
            p.error("argument --steps: required for a single row (--arch)")
        try:
            methods.check(args.method, args.m, args.arch)
        except ValueError as error:
            p.error(f"argument --method/--m: {error}")
        rows, settings = (Row(args.arch, args.method, args.m),), dict(DEFAULTS)
    if args.shard is not None:
        if not args.preset:
            p.error("argument --shard: splits the rows of a --preset")
        index, count = args.shard
        rows = rows[index::count]
        if not rows:
            p.error(f"argument --shard: {index}/{count} selects none of the preset's rows")
    out_subdir = settings.pop("out_subdir", None)
    curve_images = settings.pop("curve_images")
    for key, value in settings.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.curve_images is None:
        args.curve_images = min(curve_images, args.test_images or curve_images)
    if args.eval_every is None:
        args.eval_every = max(1, args.steps // 10)
    args.eval_every = min(args.eval_every, args.steps)
    if args.out is None:
        args.out = DEFAULT_OUT / out_subdir if out_subdir else DEFAULT_OUT
    _check_subsets(p, args, args.train_images, args.test_images)
    return rows


def _check_subsets(p, args, train: int | None, test: int | None) -> None:
    """The curve and the training bound use at most the images there are."""
    if test is not None and args.curve_images > test:
        p.error(f"argument --curve-images: {args.curve_images} is more than the {test} test images")
    if train is not None and args.train_eval_images is not None and args.train_eval_images > train:
        p.error(
            f"argument --train-eval-images: {args.train_eval_images} is more than the {train} "
            "training images"
        )


def check_data(p: argparse.ArgumentParser, args: argparse.Namespace, sizes: dict) -> None:
    """Refuse subsets larger than the data file's ``sizes`` (``{"train": n, "test": n}``)."""
    for split in ("train", "test"):
        asked = getattr(args, f"{split}_images")
        if asked is not None and asked > sizes[split]:
            p.error(
                f"argument --{split}-images: {asked} is more than the {sizes[split]} "
                f"{split} images of the data file"
            )
    _check_subsets(p, args, args.train_images or sizes["train"], args.test_images or sizes["test"])
