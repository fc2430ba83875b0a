"""RLOO: REINFORCE with the leave-one-out baseline (Kool, van Hoof & Welling 2019; Salimans
& Knowles 2014)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from .multi_sample import MultiSampleELBO

__all__ = ["RlooELBO"]


class RlooELBO(MultiSampleELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the
    REINFORCE leave-one-out gradient from ``K`` samples ``b_1..b_K`` per data point:

    .. math::
        g = \frac1K \sum_k \Big(f_k - \frac{1}{K-1} \sum_{j \ne k} f_j\Big)
            \nabla \log q(b_k) + \frac1K \sum_k \nabla f_k,

    each sample's baseline the mean of the others' ``f`` (independent of it, so unbiased
    for any ``K >= 2``), ``nabla f_k`` leaving out the zero-mean score of ``log q``.  The
    value is the mean of the ``f_k``.  Per element of the plates enclosing every site (the
    data plate), the ``K`` samples sharing its subsample.  Any discrete site (``Bernoulli``,
    ``OneHotCategorical``, ``Categorical``), any guide structure (a site may read
    another's value), reparameterised continuous sites beside them; the model is evaluated
    at discrete values only, so it may read them any way it likes.

    :param num_particles: ``K >= 2``, the samples per data point.
    :param vectorize_particles: draw them with ``jax.vmap`` (else ``jax.lax.map``).
    """

    bound_per_point = False
    leave_one_out = True

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        samples = self._samples(rng_key, params, model, guide, args, kwargs)[0]
        f = samples.value
        signal = jax.lax.stop_gradient(f - self._others(f))
        score = sum(samples.score.values(), jnp.zeros(()))
        return jnp.sum(jnp.mean(f, 0)), jnp.sum(jnp.mean(signal * score + samples.direct, 0))
