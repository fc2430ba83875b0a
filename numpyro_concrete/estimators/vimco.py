"""VIMCO: the multi-sample bound with leave-one-out baselines (Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp
from numpyro.handlers import replay, seed, substitute, trace

from .elbo import DiscreteELBO
from .traces import (
    Costs,
    DiscreteSampler,
    costs,
    discrete_pass,
    factor_dims,
    subsample_scale,
    subsample_sites,
)

__all__ = ["VimcoELBO"]


class VimcoELBO(DiscreteELBO):
    r"""The ``K``-sample bound ``L = log (1/K) sum_k w_k``, ``w_k = p(x, z_k) / q(z_k)``,
    with the VIMCO gradient (Mnih & Rezende 2016, Eqs. 8-10):

    .. math::
        g = \sum_k (L - L_{-k}) \nabla \log q(z_k) + \sum_k \tilde w_k \nabla \log w_k,

    ``L_{-k}`` the bound with ``log w_k`` replaced by the mean of the others' (their
    geometric mean), ``w~`` the normalised weights.  The bound is taken per element of the
    plates enclosing every site (the data plate: ``K`` samples per data point); under a
    subsampled data plate it is taken from each point's unscaled weights and then scaled
    by ``N / B`` (NumPyro's ``RenyiELBO`` does the same).

    :param num_particles: ``K >= 2``, the samples of the bound (not averaged particles).
    :param vectorize_particles: draw them with ``jax.vmap`` (else ``jax.lax.map``).
    """

    def __init__(self, num_particles: int = 2, vectorize_particles: bool = True) -> None:
        if not isinstance(num_particles, int) or num_particles < 2:
            raise ValueError(
                f"VimcoELBO: num_particles is the K of the K-sample bound and must be an "
                f"int >= 2 (leave-one-out baselines), got {num_particles!r}."
            )
        super().__init__(num_particles, vectorize_particles)

    def _sample(
        self, rng_key: Array, params: dict, model, guide, args, kwargs
    ) -> tuple[Costs, Array]:
        """The :class:`Costs` of one sample and the subsampling scale ``N / B``."""
        sampler = DiscreteSampler(rng_key=rng_key, keep_z=False, estimator="VimcoELBO")
        traces = discrete_pass(model, guide, args, kwargs, params, rng_key, sampler)
        dims, ndim = factor_dims(*traces)
        scale = subsample_scale(traces[0], dims, "VimcoELBO")
        return costs(*traces, set(sampler.sites), dims, ndim), jnp.asarray(scale)

    def _estimate(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        # the K samples of a point's bound share the data plate's subsample
        first = trace(substitute(seed(guide, jax.random.fold_in(rng_key, 1)), data=params))
        guide = replay(guide, trace=subsample_sites(first.get_trace(*args, **kwargs)))
        keys = jax.random.split(rng_key, self.num_particles)
        samples, scales = self.vectorize_particles_fn(
            lambda key: self._sample(key, params, model, guide, args, kwargs), keys
        )
        # the bound of each element from its unscaled weights, then scaled (RenyiELBO's rule)
        log_w, k, scale = samples.value / scales[0], self.num_particles, scales[0]
        bound = logsumexp(log_w, 0) - math.log(k)
        others = (jnp.sum(log_w, 0, keepdims=True) - log_w) / (k - 1)
        eye = jnp.eye(k, dtype=bool).reshape((k, k) + (1,) * (log_w.ndim - 1))
        swapped = jnp.where(eye, others[:, None], log_w[None])
        signal = jax.lax.stop_gradient(bound - (logsumexp(swapped, 1) - math.log(k)))
        score = sum(samples.score.values(), jnp.zeros(()))
        weights = jax.nn.softmax(jax.lax.stop_gradient(log_w), 0)
        surrogate = jnp.sum(signal * score) + jnp.sum(weights * log_w)
        return scale * jnp.sum(bound), scale * surrogate
