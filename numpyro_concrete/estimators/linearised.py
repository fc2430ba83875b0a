"""The ``K`` samples of RLOO with the model's derivative at each: the base of the double
control variates (Titsias & Shi 2022) and RODEO (Shi, Zhou, Hwang, Titsias & Mackey
2022), whose control variates are built from a first-order expansion of ``f`` around the
other samples."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from numpyro.handlers import replay

from ..plates import coordinates, factor_dims
from .multi_sample import MultiSampleELBO
from .reads import check_differentiable_reads, check_independent
from .traces import (
    DiscreteSampler,
    RelaxedSampler,
    check_bernoulli,
    continuous_sites,
    costs,
    discrete_pass,
    relaxed_pass,
)
from .tuning import TunedELBO

__all__ = ["LinearisedELBO"]

#: the estimators that take a hierarchical guide or a categorical site
ALTERNATIVES = "RlooELBO or VimcoELBO"


class LinearisedELBO(MultiSampleELBO, TunedELBO):
    """The discrete ELBO ``E_q[f(b)]`` from ``K >= 2`` samples ``b_1..b_K`` per data point,
    each with ``d_k = grad_b f(b)`` at ``b = b_k``: the derivative of the model (and of the
    guide's log-mass, ``v l - softplus(l)`` continued to real ``v``) with respect to the
    values of the guide's ``Bernoulli`` sites, taken as if they were continuous, at the
    discrete sample itself.  Each sample's pass keeps, per element of the plates enclosing
    every site (``plates.coordinates``), the coordinates of those sites: logits ``l_k``,
    values ``b_k`` and derivatives ``d_k`` (no gradient).

    The guide's discrete sites must be ``Bernoulli`` and independent of each other given
    the data (and the guide's continuous sites, which the pass at ``b_k`` shares), and the
    model must read their values with arithmetic: a categorical site, a guide whose logits
    read another site's value, or a model that reads a value through a step function
    (whose derivative is zero) raises ``ValueError``, found when the loss is traced (under
    ``jit``, once per compilation).  Subclasses implement :meth:`_particle` from
    :meth:`_samples`.
    """

    bound_per_point = False
    leave_one_out = True

    def __init__(
        self, num_particles: int = 2, tune: bool = True, vectorize_particles: bool = True
    ) -> None:
        super().__init__(num_particles, vectorize_particles)
        self.tune = tune

    def _pass(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[tuple[dict, dict], set[str], dict[str, Array]]:
        """The discrete pass, then the model and the guide at ``b_k`` as a real point
        (``RelaxedSampler(given=...)``), differentiated along it."""
        name = type(self).__name__
        sampler = DiscreteSampler(rng_key=rng_key, keep_z=False, estimator=name)
        traces = discrete_pass(model, guide, args, kwargs, params, rng_key, sampler)
        check_bernoulli(sampler.sites, name, ALTERNATIVES)
        if len(sampler.sites) > 1:
            check_independent(
                guide, args, kwargs, params, rng_key, sampler.sites, traces[1], name, ALTERNATIVES
            )
        discrete, (dims, ndim) = set(sampler.sites), factor_dims(*traces)
        # the guide's continuous values, and its data points, are those of the discrete pass
        guide = replay(guide, trace=continuous_sites(traces[1], discrete))

        def at_values(values: dict[str, Array]) -> tuple[dict, dict]:
            at = RelaxedSampler(sites=sampler.sites, given=values)
            return relaxed_pass(model, guide, args, kwargs, params, rng_key, at, name, traces[1])

        values = {k: s.value for k, s in sampler.sites.items()}
        check_differentiable_reads(at_values, values, name)
        derivatives = jax.lax.stop_gradient(
            jax.grad(lambda v: jnp.sum(costs(*at_values(v), discrete, dims, ndim).value))(values)
        )
        sites = list(sampler.sites.values())

        def laid_out(arrays: list[Array]) -> Array:
            return jnp.concatenate(
                [
                    coordinates(a, s.event_dim, dims, ndim)
                    for a, s in zip(arrays, sites, strict=True)
                ],
                -1,
            )

        kept = {
            "logits": laid_out([s.logits for s in sites]),
            "value": laid_out([s.value for s in sites]),
            "derivative": laid_out([derivatives[k] for k in sampler.sites]),
        }
        return traces, discrete, kept

    def _variance(self, estimate: Array) -> Array:
        """What the tuned quantities descend, zero in value: the second moment of the
        estimate of the gradient with respect to the logits (of each element's
        coordinates), ``estimate``, a function of the tuned quantities and of values
        without gradients; the variance up to a constant, since the mean does not depend
        on them."""
        if not self.tune:
            return jnp.zeros(())
        moment = jnp.sum(estimate**2)
        return moment - jax.lax.stop_gradient(moment)
