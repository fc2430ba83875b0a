"""Example problems with discrete latent variables, shared by the demo, the tests, the
benchmarks and the tutorials.

Each model is written with **discrete** sites, as a user would write it; relax it with
:func:`~numpyro_concrete.relax` (guides too: ``relax(guide, 2/3)`` turns a ``Bernoulli``
guide into the ``LogitBinaryConcrete`` guide with the same logits), or train it with an
estimator of the discrete objective.

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

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array

from .distributions import OneHotCategorical
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


def gaussian_mixture(x: Array, num_components: int = 3) -> None:
    """``locs ~ Normal(0, 10)^K``; for each point ``z ~ OneHotCategorical(1/K)``,
    ``x ~ Normal(select(locs, z), 1)``."""
    locs = numpyro.sample("locs", dist.Normal(0.0, 10.0).expand([num_components]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", OneHotCategorical(jnp.ones(num_components) / num_components))
        numpyro.sample("x", dist.Normal(select(locs, z), 1.0), obs=x)


def _mlp(name: str, sizes: Sequence[int], h: Array, final_bias: Array | None = None) -> Array:
    """Affine maps between ``sizes`` with tanh between them, parameters ``{name}_w{i}`` /
    ``{name}_b{i}``; Glorot-uniform weights, zero biases (Maddison et al. 2017, App. D),
    the last bias ``final_bias`` when given."""
    glorot = jax.nn.initializers.glorot_uniform()
    last = len(sizes) - 2
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        bias = final_bias if i == last and final_bias is not None else jnp.zeros(n)
        w = numpyro.param(f"{name}_w{i}", lambda key, m=m, n=n: glorot(key, (m, n)))
        h = h @ w + numpyro.param(f"{name}_b{i}", bias)
        h = h if i == last else jnp.tanh(h)
    return h


class SigmoidBeliefNet:
    """A sigmoid belief net over binary images and its amortised guide.

    Sites ``"z1"`` (next to the data) to ``"zL"`` (the top), each ``Bernoulli`` with event
    dimension 1 inside the plate ``"data"``, and the observed ``"x"``:
    ``z_L ~ Bernoulli(1/2)``, ``z_l | z_{l+1} ~ Bernoulli(logits=f_l(z_{l+1}))``,
    ``x | z_1 ~ Bernoulli(logits=f_0(z_1))``; the guide samples ``z_1 | x``, then
    ``z_{l+1} | z_l``, each from ``Bernoulli(logits=g_l(.))``.  Parameters are NumPyro
    ``param`` sites ``decoder{l}_{w|b}{i}`` and ``encoder{l}_{w|b}{i}`` (``x @ w + b``).

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
        pixel_logits: Array | None = None,
    ) -> None:
        self.sizes = (observed, *latents)
        self.inner = () if hidden is None else (hidden, hidden)
        self.pixel_logits = None if pixel_logits is None else jnp.asarray(pixel_logits)

    def model(self, x: Array) -> None:
        """``p(x, z)``, discrete; ``x`` is ``(batch, observed)`` of 0.0 / 1.0."""
        top = len(self.sizes) - 1
        with numpyro.plate("data", x.shape[0]):
            prior = dist.Bernoulli(jnp.full(self.sizes[-1], 0.5, x.dtype)).to_event(1)
            z = numpyro.sample(f"z{top}", prior)
            for layer in range(top - 1, -1, -1):
                sizes = (self.sizes[layer + 1], *self.inner, self.sizes[layer])
                bias = self.pixel_logits if layer == 0 else None
                logits = _mlp(f"decoder{layer}", sizes, z, bias)
                if layer == 0:
                    numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)
                else:
                    z = numpyro.sample(f"z{layer}", dist.Bernoulli(logits=logits).to_event(1))

    def guide(self, x: Array) -> None:
        """``q(z | x) = q(z_1 | x) q(z_2 | z_1) ...``, discrete."""
        with numpyro.plate("data", x.shape[0]):
            h = x
            for layer, (below, above) in enumerate(itertools.pairwise(self.sizes), start=1):
                logits = _mlp(f"encoder{layer - 1}", (below, *self.inner, above), h)
                h = numpyro.sample(f"z{layer}", dist.Bernoulli(logits=logits).to_event(1))
