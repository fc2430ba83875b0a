"""REBAR and RELAX per step: ours (Pyro), the plain-torch floor and the peer libraries, side
by side on the sigmoid belief net 200H-784V; and the peers' bias on a 3-Bernoulli problem.

    bash benchmarks/peers/setup.sh    # once: the peers' own environment
    python benchmarks/peers.py [--fast] [--repeats R]

Ours: ``SVI(model, guide, pyro.optim.SGD, loss).step(x)`` with ``RebarELBO(tune=False)``
(``eta = 1``, ``lam = 0.5``) and ``RelaxELBO()`` on ``SigmoidBeliefNet(latents=(200,),
hidden=None)``, 50 training images (``estimators.images``).  The torch floor, where
``benchmarks/floors_torch.py`` exists: its ``floors(latents, k)`` on the same ``nn.Linear``
modules, then the same SGD.  The peers, each in the environment that
``benchmarks/peers/setup.sh`` builds (``benchmarks/peers/.venv``: torch 2.13.0 and the
peers from the package registry, never the project's dependencies) and in a process of its
own (storchastic patches torch on import): pydrobert-pytorch's ``relax`` with its
``REBARControlVariate`` and storchastic 0.3.7's ``REBAR`` / ``RELAX``, each a whole SVI
step of its own recipe (``benchmarks/peers/*_step.py``).

Timing: process CPU time, one intra-op thread, in rounds: each round times every in-process
candidate (``common.time_interleaved``, one repeat) and then runs each peer's process, which
times its steps for a while after a warm-up; the table gives per candidate the median
milliseconds per step and the median over rounds of its ratio to ours in the same round,
with the range.  Bias: the largest ``|z|`` over the three logits of the mean of many draws
of each peer's gradient against the exact gradient by enumeration (float64), for
``f(b) = c . b + d b_0 b_1 - log q(b)`` (``benchmarks/peers/sbn.py``); above 4.5 is biased.
``--repeats``: the rounds (11; ``--fast``: 3).  ``--fast``: 20 latent units, 8 images,
2,000 draws: a smoke test.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    environment,
    markdown_table,
    parse_options,
    quiet_library_warnings,
    time_interleaved,
)

HERE = Path(__file__).resolve().parent
PEERS = {"pydrobert-pytorch": "pydrobert_step.py", "storchastic 0.3.7": "storchastic_step.py"}
PEER_PYTHON = HERE / "peers" / ".venv" / "bin" / "python"
#: the estimators compared: our loss's name, the peers' name
ESTIMATORS = {"RebarELBO(tune=False)": "REBAR", "RelaxELBO": "RELAX"}
OURS = "ours: Pyro"
FLOOR = "torch floor"
LR = 1e-4
Z_LIMIT = 4.5


def in_process(x, latents: int) -> dict[str, dict[str, Callable[[], object]]]:
    """``{row: {estimator: step}}`` for ours and, where ``floors_torch.py`` exists, the floor."""
    import pyro
    import torch
    from pyro.infer import SVI

    import pyro_concrete as pc
    from pyro_concrete.problems import SigmoidBeliefNet

    x = torch.tensor(x)
    pixel_logits = torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3))
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    losses = {"RebarELBO(tune=False)": pc.RebarELBO(tune=False), "RelaxELBO": pc.RelaxELBO()}
    rows = {OURS: {}}
    for name, loss in losses.items():
        svi = SVI(sbn.model, sbn.guide, pyro.optim.SGD({"lr": LR}), loss)
        rows[OURS][name] = lambda svi=svi: svi.step(x)
    if (HERE / "floors_torch.py").exists():
        import floors_torch

        encoder, decoder = sbn.encoder[0][0], sbn.decoder[0][0]
        floors = floors_torch.floors(latents, 5)
        rows[FLOOR] = {name: _floor_step(floors[name], encoder, decoder, x) for name in losses}
    return rows


def _floor_step(floor, encoder, decoder, x) -> Callable[[], None]:
    import torch

    own = list(floor.parameters()) if hasattr(floor, "parameters") else []
    optim = torch.optim.SGD([*encoder.parameters(), *decoder.parameters(), *own], lr=LR)

    def step() -> None:
        optim.zero_grad(set_to_none=True)
        floor(encoder, decoder, x)
        optim.step()

    return step


def run_peer(script: str, *args: object) -> dict[str, float]:
    """The JSON that a peer script prints, run in the peers' environment."""
    result = subprocess.run(
        [str(PEER_PYTHON), str(HERE / "peers" / script), *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(x, latents: int, options, rounds: int) -> dict[str, dict[str, list[float]]]:
    """``{row: {estimator: [ms per step, one per round]}}``."""
    import numpy as np

    steps = in_process(x, latents)
    flat = {(row, name): step for row, by_name in steps.items() for name, step in by_name.items()}
    out = {row: {name: [] for name in ESTIMATORS} for row in [*steps, *_installed()]}
    one = dataclasses.replace(options, repeats=1)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, x)
        for _ in range(rounds):
            timing = time_interleaved({f"{r}|{n}": s for (r, n), s in flat.items()}, one)
            for (row, name), _ in flat.items():
                out[row][name].append(timing.seconds[f"{row}|{name}"][0] * 1e3)
            for peer in _installed():
                ms = run_peer(PEERS[peer], "time", images, latents, 20 * options.block_s)
                for name, theirs in ESTIMATORS.items():
                    out[peer][name].append(ms[theirs])
    return out


def _installed() -> list[str]:
    return list(PEERS) if PEER_PYTHON.exists() else []


def table(ms: dict[str, dict[str, list[float]]], bias: dict[str, dict[str, float]]) -> str:
    rows = []
    for row, by_name in ms.items():
        cells = [row]
        for name in ESTIMATORS:
            ratios = [t / o for t, o in zip(by_name[name], ms[OURS][name], strict=True)]
            cells += [
                f"{statistics.median(by_name[name]):.2f}",
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
            ]
        z = bias.get(row)
        cells.append("-" if z is None else " / ".join(f"{z[n]:.1f}" for n in ESTIMATORS.values()))
        rows.append(cells)
    headers = [
        "step",
        "REBAR ms",
        "REBAR / ours (range)",
        "RELAX ms",
        "RELAX / ours (range)",
        "bias: largest abs z, REBAR / RELAX",
    ]
    return markdown_table(headers, rows)


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    quiet_library_warnings()
    import pyro
    import torch
    from estimators import images

    pyro.enable_validation(False)
    torch.distributions.Distribution.set_default_validate_args(False)
    latents, batch, draws = (20, 8, 2000) if options.fast else (200, 50, 1_000_000)
    rounds = options.repeats
    ms = measure(images(batch), latents, options, rounds)
    bias = {peer: run_peer(PEERS[peer], "check", draws) for peer in _installed()}
    print(f"## REBAR and RELAX: ours, the torch floor and the peers: SBN {latents}H-784V\n")
    if options.fast:
        print("**--fast: 20 latent units, 8 images, 3 rounds, 2,000 draws: a smoke test.**\n")
    print(
        f"{latents} latent units, {batch} images per step, {rounds} rounds; ratios to ours in "
        f"the same round; bias over {draws:,} draws (|z| > {Z_LIMIT}: biased).\n"
    )
    if not _installed():
        print("(No peers: their environment is not built; run `bash benchmarks/peers/setup.sh`.)\n")
    print(table(ms, bias))
    print(f"\n{environment(options)}")


if __name__ == "__main__":
    main()
