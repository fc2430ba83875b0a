"""DisARM: antithetic unbiased gradients for Bernoulli sites (Dong, Mnih & Tucker 2020)."""

from collections.abc import Callable

import torch

from .elbo import DiscreteELBO
from .traces import DiscreteSampler, costs, discrete_pass, factor_dims

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
    raises ``ValueError``.

    :param num_particles: antithetic pairs averaged.
    :param vectorize_particles: draw them in one vectorised pass.
    """

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        first = DiscreteSampler(estimator="DisarmELBO")
        traces = discrete_pass(model, guide, args, kwargs, first)
        _check_bernoulli(first)
        second = DiscreteSampler(first.noises(), sign=-1, estimator="DisarmELBO")
        anti_traces = discrete_pass(model, guide, args, kwargs, second, previous=traces[1])
        dims, ndim = factor_dims(*traces)
        here = costs(*traces, set(first.sites), dims, ndim)
        there = costs(*anti_traces, set(first.sites), dims, ndim)
        half_difference = (here.value - there.value).detach() / 2
        surrogate = ((here.direct + there.direct) / 2).sum()
        for name, site in first.sites.items():
            anti = second.sites[name]
            if not torch.equal(site.logits.detach(), anti.logits.detach()):
                raise ValueError(
                    f"DisarmELBO: the logits of guide site {name!r} depend on the value of "
                    "another discrete site (they differ between the antithetic pair). "
                    "DisARM needs the guide's discrete sites independent given the data; "
                    "use RebarELBO or VimcoELBO for a hierarchical guide."
                )
            signal = half_difference.reshape(half_difference.shape + (1,) * site.event_dim)
            alpha = site.logits
            weight = (1 - 2 * anti.value) * (site.value != anti.value) * alpha.abs().sigmoid()
            surrogate = surrogate + ((signal * weight).detach() * alpha).sum()
        return ((here.value + there.value) / 2).sum(), surrogate


def _check_bernoulli(sampler: DiscreteSampler) -> None:
    for name, site in sampler.sites.items():
        if site.kind != "bernoulli":
            raise ValueError(
                f"DisarmELBO: guide site {name!r} is categorical ({site.kind}); DisARM is "
                "defined for Bernoulli sites only. Use RebarELBO, RelaxELBO or VimcoELBO."
            )
