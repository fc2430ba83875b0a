"""Shared machinery for the benchmark scripts: options, side-by-side timing, tables.

Every comparison is measured *in the same run, interleaved*: each repeat times every
candidate once, in a rotated order, over a block of calls long enough to swamp the
timer, and the reported number is the **median over repeats of the per-repeat ratio**
``t(ours) / t(other)`` (< 1 means ours is faster).  Ratios, not absolute times, because
the machine is a small shared CPU whose absolute speed drifts with everyone's load;
two candidates timed back to back see the same load, so their ratio is stable.

The default clock is the process's CPU time (``time.process_time``), not wall time: on
an oversubscribed machine wall time mostly measures how long the scheduler kept us
waiting, while CPU time measures the work.  With one intra-op thread (the default) the
two agree on an idle machine; ``--clock wall`` times latency instead.

Import this module before ``jax``: it pins XLA's CPU thread pool to the thread count
chosen for torch (one by default), so both libraries do the same work per core.
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Options",
    "Timing",
    "environment",
    "import_numpyro_concrete",
    "markdown_table",
    "parse_options",
    "time_interleaved",
]

FAST_ENV = "CONCRETE_BENCH_FAST"
XLA_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


@dataclass(frozen=True)
class Options:
    """What every script accepts: ``--fast`` (or ``CONCRETE_BENCH_FAST=1``) and ``--threads``."""

    fast: bool
    threads: int
    repeats: int
    block_s: float
    clock: str = "cpu"

    def timer(self) -> Callable[[], float]:
        return time.process_time if self.clock == "cpu" else time.perf_counter


def quiet_library_warnings() -> None:
    """Silence the libraries' user-facing warnings, which would interleave with the tables."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def parse_options(
    description: str, argv: Sequence[str] | None = None, fast_compile: bool = False
) -> Options:
    """Parse the common command line and configure torch/XLA threads.

    ``fast_compile`` (always on under ``--fast``) turns XLA's backend optimisation off:
    compile time then drops severalfold, and only timings, not values, depend on it.
    Must run before ``import jax`` for the XLA settings to take effect.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get(FAST_ENV, "") not in ("", "0"),
        help=f"tiny sizes and few repeats, to check the script runs (or {FAST_ENV}=1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads for torch and XLA (default 1: stable ratios on a shared CPU)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="process CPU time (default: robust to other load) or wall time",
    )
    args = parser.parse_args(argv)
    extra_xla_flags = XLA_FAST_COMPILE if fast_compile or args.fast else ""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_cpu_multi_thread_eigen={str(args.threads > 1).lower()} "
                f"intra_op_parallelism_threads={args.threads} {extra_xla_flags}"
            ).strip()
    import torch

    torch.set_num_threads(args.threads)
    return Options(
        fast=args.fast,
        threads=args.threads,
        repeats=args.repeats or (3 if args.fast else 11),
        block_s=0.005 if args.fast else 0.04,
        clock=args.clock,
    )


@dataclass(frozen=True)
class Timing:
    """Per-call seconds of each candidate, one entry per repeat (same repeat, same index)."""

    seconds: dict[str, list[float]]

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over repeats of ``t(numerator) / t(denominator)``."""
        pairs = zip(self.seconds[numerator], self.seconds[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def spread(self, numerator: str, denominator: str) -> tuple[float, float]:
        """Smallest and largest per-repeat ratio (how much to trust the median)."""
        pairs = zip(self.seconds[numerator], self.seconds[denominator], strict=True)
        ratios = [a / b for a, b in pairs]
        return min(ratios), max(ratios)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def _calls_per_block(fn: Callable[[], object], block_s: float, timer: Callable[[], float]) -> int:
    """How many calls of ``fn`` fill ``block_s`` seconds (at least one)."""
    calls, elapsed = 1, 0.0
    while True:
        start = timer()
        for _ in range(calls):
            fn()
        elapsed = timer() - start
        if elapsed >= block_s / 4 or calls >= 1 << 16:
            return max(1, round(calls * block_s / elapsed))
        calls *= 4


def time_interleaved(candidates: dict[str, Callable[[], object]], options: Options) -> Timing:
    """Time every candidate once per repeat, interleaved, in a rotated order.

    Each candidate is warmed up first (first calls pay for compilation, allocator
    growth and lazy imports) and its block length is calibrated to ``options.block_s``.
    A callable must finish its work before returning (``block_until_ready`` for JAX).
    """
    names = list(candidates)
    timer = options.timer()
    for fn in candidates.values():
        for _ in range(2):
            fn()
    calls = {name: _calls_per_block(candidates[name], options.block_s, timer) for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collector pauses inside a timed block
    try:
        for r in range(options.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, number = candidates[name], calls[name]
                start = timer()
                for _ in range(number):
                    fn()
                seconds[name].append((timer() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(seconds)


NUMPYRO_CLASSES = ("Concrete", "ExpConcrete", "BinaryConcrete", "LogitBinaryConcrete")


def import_numpyro_concrete() -> object:
    """The ``numpyro_concrete`` module, or a sentence saying why the NumPyro side is skipped."""
    try:
        import numpyro_concrete
    except ImportError as error:
        return f"(NumPyro side skipped: `numpyro_concrete` is not importable: {error}.)"
    missing = [name for name in NUMPYRO_CLASSES if not hasattr(numpyro_concrete, name)]
    if missing:
        return (
            f"(NumPyro side skipped: `numpyro_concrete` does not export {', '.join(missing)} yet.)"
        )
    return numpyro_concrete


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]
    body = [line(row) for row in cells[1:]]
    return "\n".join([line(cells[0]), "|" + "|".join(rule) + "|", *body])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def environment(options: Options, timing: bool = True) -> str:
    """One line naming the software and the settings a table was measured with."""
    import numpy
    import pyro
    import torch

    parts = [
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"pyro-ppl {pyro.__version__}",
    ]
    if "jax" in sys.modules:
        import jax
        import numpyro

        parts += [
            f"jax {jax.__version__}",
            f"numpyro {numpyro.__version__}",
            f"XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}'",
        ]
    parts += [
        f"numpy {numpy.__version__}",
        f"{os.cpu_count()} CPU cores ({platform.machine()}, shared)",
        f"{options.threads} intra-op thread(s)",
    ]
    if timing:
        parts += [
            f"{options.repeats} repeats",
            "clock: " + ("process CPU time" if options.clock == "cpu" else "wall time"),
        ]
    return "; ".join(parts)
