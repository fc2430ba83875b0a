"""The ``K``-sample bound ``L = log (1/K) sum_k w_k`` of each data point, the objective that
VIMCO (discrete sites) and the importance-weighted ELBO (reparameterised sites) estimate
the gradient of (Burda, Grosse & Salakhutdinov 2016, Eq. 8; Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp
from numpyro.handlers import replay, seed, substitute, trace

from ..plates import element_scale, factor_dims
from .elbo import DiscreteELBO
from .traces import Costs, DiscreteSampler, costs, discrete_pass, subsample_sites

__all__ = ["MultiSampleELBO"]


class MultiSampleELBO(DiscreteELBO):
    """The ``K = num_particles`` samples taken per element of the plates that enclose
    every site (the data plate: ``K`` samples per data point), all sharing the data
    plate's subsample and stacked on a sample dim: what one call of :meth:`_particle`
    takes (a ``K``-sample bound, RLOO's leave-one-out baselines, NVIL's moments over a
    step's samples).  Each element's bound is taken from its unscaled weights and then
    multiplied by the element's scale (subsampling's ``N / B``, ``handlers.scale``), so a
    scale ``S`` gives ``S log (1/K) sum_k w_k``, never ``log (1/K) sum_k w_k^S``.

    :meth:`_pass` is one sample's traces, discrete sites and what the estimator keeps of
    it besides its costs (the discrete pass, keeping nothing, unless a subclass says
    otherwise).  A subclass whose objective is not a bound per point (the ELBO, linear in
    the weights) sets :attr:`bound_per_point` false: a scale then need not be one per
    point.
    """

    stacks_particles = True
    #: whether the objective is each point's ``K``-sample bound (a scale is one per point)
    bound_per_point = True
    #: whether the estimator needs ``K >= 2`` (leave-one-out baselines)
    leave_one_out = False

    def __init__(self, num_particles: int = 2, vectorize_particles: bool = True) -> None:
        if self.leave_one_out and (not isinstance(num_particles, int) or num_particles < 2):
            raise ValueError(
                f"{type(self).__name__}: num_particles is the K of its K samples per data "
                f"point and must be an int >= 2 (leave-one-out baselines), got "
                f"{num_particles!r}."
            )
        super().__init__(num_particles, vectorize_particles)

    def _pass(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[tuple[dict, dict], set[str], dict[str, Array]]:
        """One sample's traces, discrete sites, and the arrays the estimator keeps of it
        besides its costs, by name: the discrete pass, keeping nothing, by default."""
        sampler = DiscreteSampler(rng_key=rng_key, keep_z=False, estimator=type(self).__name__)
        traces = discrete_pass(model, guide, args, kwargs, params, rng_key, sampler)
        return traces, set(sampler.sites), {}

    def _sample(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Costs, Array, dict[str, Array]]:
        """The :class:`Costs` of one sample, the scale of each element and what
        :meth:`_pass` kept: the function that ``vectorize_particles_fn`` maps over the ``K``
        keys (Pyro's ``_samples`` loops over, or vectorises, its passes instead)."""
        traces, discrete, kept = self._pass(rng_key, params, model, guide, args, kwargs)
        dims, ndim = factor_dims(*traces)
        scale = (
            element_scale(traces, dims, ndim, type(self).__name__)
            if self.bound_per_point
            else jnp.ones(1)
        )
        return costs(*traces, discrete, dims, ndim), scale, kept

    def _samples(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Costs, Array, Array, dict[str, Array]]:
        """``(costs, log_w, scale, kept)``: the :class:`Costs` of the ``K`` samples stacked
        on dim 0, their unscaled log weights, the scale of each element (no sample dim),
        and what :meth:`_pass` kept of each sample, stacked on dim 0."""
        # the K samples of a point's bound share the data plate's subsample
        first = trace(substitute(seed(guide, jax.random.fold_in(rng_key, 1)), data=params))
        guide = replay(guide, trace=subsample_sites(first.get_trace(*args, **kwargs)))
        keys = jax.random.split(rng_key, self.num_particles)
        samples, scales, kept = self.vectorize_particles_fn(
            lambda key: self._sample(key, params, model, guide, args, kwargs), keys
        )
        scale = scales[0]
        # an element of scale 0 has log densities 0, and keeps the weights 0
        log_w = samples.value / jnp.where(scale == 0, 1.0, scale)
        return samples, log_w, scale, kept

    def _others(self, x: Array) -> Array:
        """The mean over the other samples (dim 0) of each sample's ``x``: the
        leave-one-out baselines."""
        return (jnp.sum(x, 0, keepdims=True) - x) / (self.num_particles - 1)

    def _bound(self, log_w: Array) -> Array:
        """``log (1/K) sum_k w_k`` of each element."""
        return logsumexp(log_w, 0) - math.log(self.num_particles)
