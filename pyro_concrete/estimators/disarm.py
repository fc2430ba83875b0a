"""DisARM: antithetic unbiased gradients for Bernoulli sites (Dong, Mnih & Tucker 2020)."""

from collections.abc import Callable

import torch

from ..plates import factor_dims
from .elbo import DiscreteELBO
from .reads import check_independent
from .traces import (
    DiscreteSampler,
    antithetic_pass,
    check_bernoulli,
    costs,
    discrete_pass,
    validated,
)

__all__ = ["DisarmELBO"]

#: the estimators that take a hierarchical guide, and a categorical site
_ALTERNATIVES = ("RebarELBO or VimcoELBO", "RebarELBO, RelaxELBO or VimcoELBO")


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
    independent of each other given the data and the guide's continuous sites, whose values
    the pair shares (as in the paper): one whose logits read another's value raises
    ``ValueError``, found in the guide's program on the first step of each model and guide
    (``reads.py``), not by comparing values.

    :param num_particles: antithetic pairs averaged.
    :param vectorize_particles: draw them, and each one's ``b`` and ``b~``, in one pass of
        model and guide (a plate of size 2 left of the particles'), which needs both to
        broadcast as for Pyro's vectorised particles; else two passes per pair.
    """

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._first_step:
            check_independent(guide, args, kwargs, "DisarmELBO", _ALTERNATIVES[0])
        if self.vectorize_particles:
            return self._pair_in_one_pass(model, guide, args, kwargs)
        first = DiscreteSampler(estimator="DisarmELBO")
        traces = discrete_pass(model, guide, args, kwargs, first)
        check_bernoulli(first.sites, "DisarmELBO", _ALTERNATIVES[1])
        with validated(self._first_step):
            anti_traces, second = antithetic_pass(model, guide, args, kwargs, first, traces)
        dims, ndim = factor_dims(*traces)
        here = costs(*traces, set(first.sites), dims, ndim)
        there = costs(*anti_traces, set(first.sites), dims, ndim)
        pairs = {
            name: (site.logits, site.value, anti.value, site.event_dim)
            for (name, site), anti in zip(first.sites.items(), second.sites.values(), strict=True)
        }
        return _estimate(here.value, there.value, here.direct + there.direct, pairs)

    def _pair_in_one_pass(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Guide and model run once, in a plate of size 2 left of every other plate (the
        particles' included) whose elements are ``b`` and ``b~``: as the particles, this
        needs a model and a guide that broadcast."""
        pair, dim = self._pair("disarm_pair")
        sampler = DiscreteSampler(antithetic_dim=dim, estimator="DisarmELBO")
        traces = discrete_pass(pair(model), pair(guide), args, kwargs, sampler)
        check_bernoulli(sampler.sites, "DisarmELBO", _ALTERNATIVES[1])
        cost = costs(*traces, set(sampler.sites), *factor_dims(*traces))

        def halves(x: torch.Tensor, event_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
            return x.narrow(dim - event_dim, 0, 1), x.narrow(dim - event_dim, 1, 1)

        pairs = {
            name: (
                halves(site.logits, site.event_dim)[0],
                *halves(site.value, site.event_dim),
                site.event_dim,
            )
            for name, site in sampler.sites.items()
        }
        return _estimate(*halves(cost.value), cost.direct, pairs)


def _estimate(
    value: torch.Tensor, anti_value: torch.Tensor, direct: torch.Tensor, pairs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective and the surrogate from ``f(b)`` and ``f(b~)`` per element, the sum of
    the direct parts of both, and per site ``(alpha, b, b~, event_dim)``."""
    half_difference = (value - anti_value).detach() / 2
    surrogate = (direct / 2).sum()
    for alpha, b, anti, event_dim in pairs.values():
        signal = half_difference.reshape(half_difference.shape + (1,) * event_dim)
        weight = (1 - 2 * anti) * (b != anti) * alpha.abs().sigmoid()
        surrogate = surrogate + ((signal * weight).detach() * alpha).sum()
    return ((value + anti_value) / 2).sum(), surrogate
