"""The plain-torch floors of ``benchmarks/floors_torch.py`` compute unbiased estimators of
the library's objectives.

``benchmarks/estimators.py`` times each Pyro estimator against its floor; the ratio means
something only if the floor computes the same estimator.  On a tiny sigmoid belief net in
float64 (3 latents, 5 pixels, 2 images), the mean of many draws of every parameter's
gradient (encoder and decoder) must match the exact gradient of the objective, the ELBO or
VIMCO's ``K``-sample bound, computed by enumerating every latent configuration (z-scores).
The draws are cheap: each image is repeated ``REPLICAS`` times in one batch, whose summed
gradient is then ``REPLICAS`` independent draws per image.
"""

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is a folder of scripts, not a package: load floors_torch.py by path.
_spec = importlib.util.spec_from_file_location(
    "benchmarks_floors_torch", ROOT / "benchmarks/floors_torch.py"
)
floors_torch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floors_torch)

LATENTS, PIXELS = 3, 5
K = 3
CALLS, REPLICAS = 200, 50
#: over the 38 z-scores of a floor, a correct one exceeds it with probability below 3e-4
Z_LIMIT = 4.5
IMAGES = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=torch.float64)


def _modules() -> tuple[torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(0)
    encoder = torch.nn.Linear(PIXELS, LATENTS).double()
    decoder = torch.nn.Linear(LATENTS, PIXELS).double()
    return encoder, decoder


def _log_bernoulli(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Bernoulli(logits=logits).log_prob(value).sum(-1)


def _exact(encoder, decoder, k: int) -> list[torch.Tensor]:
    """The gradient of ``sum_x E[log 1/k sum_j p(x, b_j) / q(b_j | x)]`` (``k = 1``: the
    ELBO) by enumerating the ``2^(H k)`` configurations of each image."""
    states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=LATENTS)), dtype=torch.float64)
    log_q = _log_bernoulli(states[:, None, :], encoder(IMAGES))  # (2^H, images)
    log_p = LATENTS * math.log(0.5) + _log_bernoulli(IMAGES, decoder(states[:, None, :]))
    total = torch.zeros((), dtype=torch.float64)
    for picks in itertools.product(range(len(states)), repeat=k):
        picks = list(picks)
        weight = log_q[picks].sum(0).exp()
        bound = (log_p[picks] - log_q[picks]).logsumexp(0) - math.log(k)
        total = total + (weight * bound).sum()
    params = [*encoder.parameters(), *decoder.parameters()]
    return list(torch.autograd.grad(total, params))


CASES = {
    "rebar": (floors_torch.rebar, 1),
    "rebar fixed logits": (lambda e, d, x: floors_torch.rebar(e, d, x, fixed_logits=True), 1),
    # exact at any control variate: away from the initial one
    "relax": (floors_torch.Relax(LATENTS, eta=0.7, temperature=0.8, dtype=torch.float64), 1),
    "disarm": (floors_torch.disarm, 1),
    "vimco": (lambda e, d, x: floors_torch.vimco(e, d, x, k=K), K),
    "rloo": (lambda e, d, x: floors_torch.rloo(e, d, x, k=K), 1),
}


@pytest.mark.parametrize("name", CASES)
def test_floor_is_unbiased_for_its_objective(name):
    floor, k = CASES[name]
    encoder, decoder = _modules()
    params = [*encoder.parameters(), *decoder.parameters()]
    x = IMAGES.repeat_interleave(REPLICAS, 0)
    draws = []
    for _ in range(CALLS):
        for p in params:
            p.grad = None
        floor(encoder, decoder, x)
        draws.append(torch.cat([-p.grad.reshape(-1) for p in params]) / REPLICAS)
    draws = torch.stack(draws)
    exact = torch.cat([g.reshape(-1) for g in _exact(encoder, decoder, k)])
    se = draws.std(0) / math.sqrt(CALLS)
    # a weight of a pixel that is 0 in every image has the gradient 0 in every draw
    z = torch.where(se > 0, (draws.mean(0) - exact) / se.clamp_min(1e-300), exact)
    assert z.abs().max() < Z_LIMIT, f"largest |z| {z.abs().max():.2f}"
