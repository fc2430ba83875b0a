"""DisARM: antithetic unbiased gradients for Bernoulli sites (Dong, Mnih & Tucker 2020)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from numpyro.util import not_jax_tracer

from .elbo import DiscreteELBO
from .traces import Costs, DiscreteSampler, costs, discrete_pass, factor_dims

__all__ = ["DisarmELBO"]


class DisarmELBO(DiscreteELBO):
    r"""The ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the DisARM gradient
    for the logits ``alpha`` of the guide's ``Bernoulli`` sites (Dong et al. 2020, Eq. 12).

    One uniform ``u`` per dimension gives the antithetic pair ``b = 1[u < sigmoid(alpha)]``,
    ``b~ = 1[1 - u < sigmoid(alpha)]`` (logistic noise ``L`` and ``-L`` here) and

    .. math::
        g_{\alpha_i} = \tfrac12 (f(b) - f(\tilde b)) (-1)^{\tilde b_i}
        \mathbb 1[b_i \ne \tilde b_i] \, \sigma(|\alpha_i|),

    plus the mean of the other gradients of ``f`` at ``b`` and ``b~`` (model parameters,
    reparameterised continuous sites; the zero-mean score of ``log q`` is left out).  The
    value is the mean of ``f(b)`` and ``f(b~)``.  Per element of the plates enclosing
    every site (the data plate).  The guide's discrete sites must be ``Bernoulli`` and
    independent of each other given the data (as in the paper): one that reads another
    raises ``ValueError`` where the logits are concrete (outside ``jit``); under ``jit`` the
    check cannot run, so check a hierarchical guide once eagerly.

    :param num_particles: antithetic pairs averaged.
    :param vectorize_particles: draw them, and each one's ``b`` and ``b~`` (one pass of
        model and guide for both), with ``jax.vmap`` (else ``jax.lax.map``).
    """

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        event_dims = {}
        # the key of b's pass when b~ had a pass of its own: the same draws as then
        key = jax.random.split(rng_key)[0]

        def one_of_the_pair(sign: Array) -> tuple[Costs, dict[str, tuple[Array, Array]]]:
            sampler = DiscreteSampler(rng_key=key, sign=sign, estimator="DisarmELBO")
            traces = discrete_pass(model, guide, args, kwargs, params, key, sampler)
            _check_bernoulli(sampler)
            event_dims.update({k: s.event_dim for k, s in sampler.sites.items()})
            here = costs(*traces, set(sampler.sites), *factor_dims(*traces))
            return here, {k: (s.logits, s.value) for k, s in sampler.sites.items()}

        # b and b~ in one pass of guide and model (jax.vmap, or jax.lax.map if the particles
        # are not vectorised): the same key draws the same logistic noise L for both, and
        # the sign makes it -L for b~
        pair, sites = self.vectorize_particles_fn(one_of_the_pair, jnp.array([1, -1]))
        half_difference = jax.lax.stop_gradient(pair.value[0] - pair.value[1]) / 2
        surrogate = jnp.sum((pair.direct[0] + pair.direct[1]) / 2)
        for name, (logits, value) in sites.items():
            _check_independent(name, logits[0], logits[1])
            signal = half_difference.reshape(half_difference.shape + (1,) * event_dims[name])
            alpha, (b, anti) = logits[0], value
            weight = (1 - 2 * anti) * (b != anti) * jax.nn.sigmoid(jnp.abs(alpha))
            surrogate = surrogate + jnp.sum(jax.lax.stop_gradient(signal * weight) * alpha)
        return jnp.sum((pair.value[0] + pair.value[1]) / 2), surrogate


def _check_independent(name: str, logits: Array, anti_logits: Array) -> None:
    if not (not_jax_tracer(logits) and not_jax_tracer(anti_logits)):
        return
    if not bool(jnp.array_equal(logits, anti_logits)):
        raise ValueError(
            f"DisarmELBO: the logits of guide site {name!r} depend on the value of "
            "another discrete site (they differ between the antithetic pair). "
            "DisARM needs the guide's discrete sites independent given the data; "
            "use RebarELBO or VimcoELBO for a hierarchical guide."
        )


def _check_bernoulli(sampler: DiscreteSampler) -> None:
    for name, site in sampler.sites.items():
        if site.kind != "bernoulli":
            raise ValueError(
                f"DisarmELBO: guide site {name!r} is categorical ({site.kind}); DisARM is "
                "defined for Bernoulli sites only. Use RebarELBO, RelaxELBO or VimcoELBO."
            )
