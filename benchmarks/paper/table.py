"""The markdown tables of the runs' results, the paper's numbers beside ours.

    python -m benchmarks.paper.table [RESULTS_DIR_OR_JSON ...] [--out FILE]

One table per task (density estimation: Table 1; structured prediction: the table in
Figure 4), one line per run: negative log-likelihood bounds in nats per image (lower is
better), ours with the standard error over chunks of 100 images, and the paper's.  The
paper's numbers are **reference data typed from the paper**, not measured here; REBAR,
RELAX and DisARM came after the paper and have none.  A test bound on a subset of the test
set (``--test-images``) states its number of images; a row still training (its JSON has no
final bound yet) is listed under the tables with its steps so far.
"""

import argparse
import json
from pathlib import Path

from ..common import markdown_table
from .options import DEFAULT_OUT
from .protocol import ARCHITECTURES

__all__ = ["load_records", "main", "tables"]

TITLES = {
    "density": "Density estimation on binarized MNIST (the paper's Table 1): -L_K per image",
    "structured": "Structured prediction, bottom half from top half (the paper's Figure 4 "
    "table): -L^SP_100 per image",
}
#: every method of ``methods.METHODS``, in the order of the tables' rows
METHOD_ORDER = (
    "concrete",
    "nvil",
    "vimco",
    "rebar",
    "relax",
    "disarm",
    "rloo",
    "doublecv",
    "rodeo",
)


def load_records(paths: list[Path]) -> list[dict]:
    """Every run's JSON under ``paths`` (files or folders)."""
    files = []
    for path in paths:
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [json.loads(f.read_text()) for f in files]


def _bound(entry: dict) -> str:
    se = entry["se"]
    return f"{entry['nll']:.2f}" + ("" if se is None else f" ± {se:.2f}")


def _test(record: dict) -> str:
    """The test bound, with its number of images when they are a subset of the test set."""
    subset = record["config"].get("test_images") is not None
    images = f" ({record['test']['images']:,} images)" if subset else ""
    return _bound(record["test"]) + images


def _paper(record: dict, index: int) -> str:
    return "-" if record["paper"] is None else f"{record['paper'][index]:.1f}"


def tables(records: list[dict]) -> str:
    """The markdown, one section per task present in ``records``."""
    arch_order = list(ARCHITECTURES)
    training = [r for r in records if r["test"] is None]  # no final bound yet
    records = [r for r in records if r["test"] is not None]
    out = []
    for table, title in TITLES.items():
        rows = sorted(
            (r for r in records if r["table"] == table),
            key=lambda r: (
                arch_order.index(r["arch"]),
                r["m"],
                METHOD_ORDER.index(r["method"]),
                r["backend"],
                r["steps"],
            ),
        )
        if not rows:
            continue
        headers = [
            "model",
            "m",
            "method",
            "backend",
            "steps",
            "test (ours)",
            "test (paper)",
            "train (ours)",
            "train (paper)",
            "K",
            "ms/step",
            "device",
        ]
        body = [
            [
                r["arch"],
                r["m"],
                r["label"],
                r["backend"],
                f"{r['steps']:,}",
                _test(r),
                _paper(r, 0),
                _bound(r["train"]) + f" ({r['train']['images']:,} images)",
                _paper(r, 1),
                r["test"]["k"],
                f"{1e3 * r['seconds_per_step']:.2f}",
                r["device"],
            ]
            for r in rows
        ]
        out += [f"### {title}\n", markdown_table(headers, body), ""]
    out.append(
        "Paper columns: reference data typed from Maddison, Mnih & Teh (2017), 10^7 steps, "
        "K = 50,000 (density) / 100 (structured prediction); the score-function column is "
        "NVIL at m = 1 and VIMCO at m > 1. Ours: test bound on the whole test set unless a "
        "number of images is stated, train bound on the images stated, ± standard error over "
        "chunks of 100 images."
    )
    out += [
        f"Still training (no final bound yet): {r['arch']} {r['label']} m = {r['m']} "
        f"({r['backend']}), step {r['steps']:,} of {r['steps_requested']:,}."
        for r in training
    ]
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper.table")
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_OUT])
    parser.add_argument("--out", type=Path, help="write the markdown here too")
    args = parser.parse_args(argv)
    text = tables(load_records(args.paths))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
