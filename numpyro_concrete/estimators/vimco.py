"""VIMCO: the multi-sample bound with leave-one-out baselines (Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from .multi_sample import MultiSampleELBO

__all__ = ["VimcoELBO"]


class VimcoELBO(MultiSampleELBO):
    r"""The ``K``-sample bound ``L = log (1/K) sum_k w_k``, ``w_k = p(x, z_k) / q(z_k)``,
    with the VIMCO gradient (Mnih & Rezende 2016, Eqs. 8-10):

    .. math::
        g = \sum_k (L - L_{-k}) \nabla \log q(z_k) + \sum_k \tilde w_k \nabla \log w_k,

    ``L_{-k}`` the bound with ``log w_k`` replaced by the mean of the others' (their
    geometric mean), ``w~`` the normalised weights.  The bound is taken per element of the
    plates enclosing every site (the data plate: ``K`` samples per data point), from each
    point's unscaled weights, and then multiplied by the point's scale: ``N / B`` under a
    subsampled data plate (NumPyro's ``RenyiELBO`` does the same), ``S`` under
    ``handlers.scale(scale=S)`` around the model and the guide, a scale array's value at
    the point.  A scale that differs between the sites of one point (on the model only, or
    on some sites) is a ``ValueError``: the bound of a point is one number, and there is no
    reading of it with its factors weighed apart.

    :param num_particles: ``K >= 2``, the samples of the bound (not averaged particles).
    :param vectorize_particles: draw them with ``jax.vmap`` (else ``jax.lax.map``).
    """

    leave_one_out = True

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        samples, log_w, scale, _ = self._samples(rng_key, params, model, guide, args, kwargs)
        k = self.num_particles
        bound = self._bound(log_w)
        others = self._others(log_w)
        eye = jnp.eye(k, dtype=bool).reshape((k, k) + (1,) * (log_w.ndim - 1))
        swapped = jnp.where(eye, others[:, None], log_w[None])
        signal = jax.lax.stop_gradient(bound - (logsumexp(swapped, 1) - math.log(k)))
        score = sum(samples.score.values(), jnp.zeros(()))
        weights = jax.nn.softmax(jax.lax.stop_gradient(log_w), 0)
        surrogate = scale * jnp.sum(signal * score + weights * log_w, 0)
        return jnp.sum(scale * bound), jnp.sum(surrogate)
