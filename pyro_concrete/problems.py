"""Example problems with discrete latent variables, shared by the demo, the tests, the
benchmarks and the tutorials.

Each model is written with **discrete** sites, as a user would write it; relax it with
:func:`~pyro_concrete.relax` (guides too: ``relax(guide, 2/3)`` turns a ``Bernoulli`` guide
into the ``LogitBinaryConcrete`` guide with the same logits), or train it with an estimator
of the discrete objective.

- :func:`gaussian_mixture`: ``K`` unit-variance Gaussians with uniform weights,
  ``locs ~ Normal(0, 10)``, one ``OneHotCategorical`` assignment ``"z"`` per point;
  :func:`mixture_data` simulates it and :func:`mixture_posterior` is the exact
  ``p(z_i | x_i, locs)``.
- :class:`SigmoidBeliefNet`: the density-estimation models of Maddison et al. (2017,
  Sec. 5.2 and Table 1), ``L`` layers of binary units with a ``Bernoulli(1/2)`` top layer,
  each layer's logits an affine (``hidden=None``: "200H-784V") or two-tanh-layer MLP
  (``hidden=200``: "200H~784V") function of the layer above, and a mirrored amortised
  guide ``q(z_1 | x) q(z_2 | z_1) ...``.
"""

import itertools
from collections.abc import Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .relax import select

__all__ = ["SigmoidBeliefNet", "gaussian_mixture", "mixture_data", "mixture_posterior"]


def mixture_data(
    n: int = 600, locs: Sequence[float] = (-5.0, 0.0, 5.0), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(z, x)``: ``n`` assignments drawn uniformly and points ``x ~ Normal(locs[z], 1)``
    (float32), simulated with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, len(locs), n)
    return z, (np.asarray(locs)[z] + rng.standard_normal(n)).astype(np.float32)


def mixture_posterior(x: np.ndarray, locs: np.ndarray) -> np.ndarray:
    """The exact ``p(z_i = k | x_i, locs)`` of :func:`gaussian_mixture`, ``(n, K)``, in
    float64: ``softmax_k(-(x_i - locs_k)^2 / 2)``."""
    log_lik = -0.5 * (np.asarray(x, np.float64)[:, None] - np.asarray(locs, np.float64)) ** 2
    p = np.exp(log_lik - log_lik.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def gaussian_mixture(x: torch.Tensor, num_components: int = 3) -> None:
    """``locs ~ Normal(0, 10)^K``; for each point ``z ~ OneHotCategorical(1/K)``,
    ``x ~ Normal(select(locs, z), 1)``."""
    locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([num_components]).to_event(1))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.OneHotCategorical(x.new_ones(num_components) / num_components))
        pyro.sample("x", dist.Normal(select(locs, z), 1.0), obs=x)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Affine maps between ``sizes`` with tanh between them; Glorot-uniform weights, zero
    biases (Maddison et al. 2017, App. D)."""
    layers: list[nn.Module] = []
    for m, n in itertools.pairwise(sizes):
        linear = nn.Linear(m, n)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.Tanh()]
    return nn.Sequential(*layers[:-1])


class SigmoidBeliefNet(nn.Module):
    """A sigmoid belief net over binary images and its amortised guide.

    Sites ``"z1"`` (next to the data) to ``"zL"`` (the top), each ``Bernoulli`` with event
    dimension 1 inside the plate ``"data"``, and the observed ``"x"``:
    ``z_L ~ Bernoulli(1/2)``, ``z_l | z_{l+1} ~ Bernoulli(logits=f_l(z_{l+1}))``,
    ``x | z_1 ~ Bernoulli(logits=f_0(z_1))``; the guide samples ``z_1 | x``, then
    ``z_{l+1} | z_l``, each from ``Bernoulli(logits=g_l(.))``.

    :param latents: the sizes of the stochastic layers, from the data up
        (``(200,)``: 200H-784V; ``(200, 200)``: 200H-200H-784V).
    :param hidden: ``None`` for affine maps between layers, or the width of the two tanh
        layers inside every map (the paper's "~": 200).
    :param observed: the number of pixels.
    :param pixel_logits: the output bias at start (the paper: the logit of each pixel's
        base rate in the training set); zeros when ``None``.
    """

    def __init__(
        self,
        latents: Sequence[int] = (200,),
        hidden: int | None = 200,
        observed: int = 784,
        pixel_logits: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.sizes = (observed, *latents)
        inner = () if hidden is None else (hidden, hidden)
        self.decoder = nn.ModuleList(
            _mlp((above, *inner, below)) for below, above in itertools.pairwise(self.sizes)
        )
        self.encoder = nn.ModuleList(
            _mlp((below, *inner, above)) for below, above in itertools.pairwise(self.sizes)
        )
        if pixel_logits is not None:
            with torch.no_grad():
                self.decoder[0][-1].bias.copy_(pixel_logits)

    def model(self, x: torch.Tensor) -> None:
        """``p(x, z)``, discrete; ``x`` is ``(batch, observed)`` of 0.0 / 1.0."""
        pyro.module("decoder", self.decoder)
        top = len(self.sizes) - 1
        with pyro.plate("data", x.shape[0]):
            prior = dist.Bernoulli(x.new_full((self.sizes[-1],), 0.5)).to_event(1)
            z = pyro.sample(f"z{top}", prior)
            for layer in range(top - 1, -1, -1):
                logits = self.decoder[layer](z)
                if layer == 0:
                    pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)
                else:
                    z = pyro.sample(f"z{layer}", dist.Bernoulli(logits=logits).to_event(1))

    def guide(self, x: torch.Tensor) -> None:
        """``q(z | x) = q(z_1 | x) q(z_2 | z_1) ...``, discrete."""
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            h = x
            for layer, encoder in enumerate(self.encoder, start=1):
                h = pyro.sample(f"z{layer}", dist.Bernoulli(logits=encoder(h)).to_event(1))
