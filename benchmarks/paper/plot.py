"""Test bound against training steps, one panel per model and m, one line per method.

    python -m benchmarks.paper.plot [RESULTS_DIR_OR_JSON ...] [--out FILE.png]

The curve points are the bound on a fixed subset of test images (``curve_eval`` in each
JSON: images and K); the dot at the end of a line is the run's final test bound (on the
whole test set, or on the number of images its legend states), absent while the row still
trains, and a dashed line marks the paper's number (reference data) where it has one.
"""

import argparse
import math
from pathlib import Path

from .options import DEFAULT_OUT
from .table import load_records

__all__ = ["main", "plot"]


def plot(records: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["arch"], r["m"]) for r in records})
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, (arch, m) in zip(axes.flat, panels, strict=False):
        for r in (r for r in records if (r["arch"], r["m"]) == (arch, m)):
            name = f"{r['label']} ({r['backend']}, {r['steps']:,} steps"
            if r["config"].get("test_images") is not None and r["test"] is not None:
                name += f", {r['test']['images']:,} test images"
            steps = [p["step"] for p in r["curve"]]
            line = ax.plot(steps, [p["test_nll"] for p in r["curve"]], label=name + ")")[0]
            if r["test"] is not None:
                ax.plot([r["steps"]], [r["test"]["nll"]], "o", color=line.get_color())
            if r["paper"] is not None:
                ax.axhline(r["paper"][0], ls="--", lw=0.8, color=line.get_color())
        ax.set_title(f"{arch}, m = {m}")
        ax.set_xlabel("training steps")
        ax.set_ylabel("test -bound (nats/image)")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper.plot")
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_OUT])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "test_bound_vs_steps.png")
    args = parser.parse_args(argv)
    print(plot(load_records(args.paths), args.out))


if __name__ == "__main__":
    main()
