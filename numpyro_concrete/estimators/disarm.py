"""DisARM: antithetic unbiased gradients for Bernoulli sites (Dong, Mnih & Tucker 2020)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from ..plates import factor_dims
from .elbo import DiscreteELBO
from .reads import check_independent
from .traces import DiscreteSampler, antithetic_pass, check_bernoulli, costs, discrete_pass

__all__ = ["DisarmELBO"]

#: the estimators that take a hierarchical guide, and a categorical site
_ALTERNATIVES = ("RebarELBO or VimcoELBO", "RebarELBO, RelaxELBO or VimcoELBO")


class DisarmELBO(DiscreteELBO):
    r"""The ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the DisARM gradient
    for the logits ``alpha`` of the guide's ``Bernoulli`` sites (Dong et al. 2020, Eq. 12).

    One uniform ``u`` per dimension gives the antithetic pair ``b = 1[u < sigmoid(alpha)]``,
    ``b~ = 1[1 - u < sigmoid(alpha)]`` (drawn so here, without logarithms) and

    .. math::
        g_{\alpha_i} = \tfrac12 (f(b) - f(\tilde b)) (-1)^{\tilde b_i}
        \mathbb 1[b_i \ne \tilde b_i] \, \sigma(|\alpha_i|),

    plus the mean of the other gradients of ``f`` at ``b`` and ``b~`` (model parameters,
    reparameterised continuous sites; the zero-mean score of ``log q`` is left out).  The
    value is the mean of ``f(b)`` and ``f(b~)``.  Per element of the plates enclosing
    every site (the data plate).  The guide's discrete sites must be ``Bernoulli`` and
    independent of each other given the data and the guide's continuous sites, whose values
    the pair shares (as in the paper): one whose logits read
    another's value raises ``ValueError``, found in the guide's program when it is traced
    (so under ``jit`` too), not by comparing values.

    :param num_particles: antithetic pairs averaged.
    :param vectorize_particles: draw them with ``jax.vmap`` (else ``jax.lax.map``).  The
        ``b`` and ``b~`` of a pair are two passes of model and guide in the one compiled
        program (the guide's trace reused where it has a single discrete site), which XLA
        runs faster on a CPU than a ``vmap`` over the pair.
    """

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        # one key for both passes: the same uniform U, b from 1 - U and b~ from U (sign -1);
        # the first half of a split, as when b~ had a key of its own, so the draws stay those
        key = jax.random.split(rng_key)[0]
        first = DiscreteSampler(rng_key=key, keep_z=False, estimator="DisarmELBO")
        traces = discrete_pass(model, guide, args, kwargs, params, key, first)
        check_bernoulli(first.sites, "DisarmELBO", _ALTERNATIVES[1])
        if len(first.sites) > 1:
            check_independent(
                guide,
                args,
                kwargs,
                params,
                key,
                first.sites,
                traces[1],
                "DisarmELBO",
                _ALTERNATIVES[0],
            )
        anti_traces, second = antithetic_pass(
            model, guide, args, kwargs, params, key, first, traces
        )
        dims, ndim = factor_dims(*traces)
        here = costs(*traces, set(first.sites), dims, ndim)
        there = costs(*anti_traces, set(first.sites), dims, ndim)
        half_difference = jax.lax.stop_gradient(here.value - there.value) / 2
        surrogate = jnp.sum((here.direct + there.direct) / 2)
        for site, anti in zip(first.sites.values(), second.sites.values(), strict=True):
            signal = half_difference.reshape(half_difference.shape + (1,) * site.event_dim)
            alpha, b = site.logits, site.value
            weight = (1 - 2 * anti.value) * (b != anti.value) * jax.nn.sigmoid(jnp.abs(alpha))
            surrogate = surrogate + jnp.sum(jax.lax.stop_gradient(signal * weight) * alpha)
        return jnp.sum((here.value + there.value) / 2), surrogate
