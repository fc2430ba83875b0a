"""The ``K`` samples of RLOO with the model's derivative at each: the base of the double
control variates (Titsias & Shi 2022) and RODEO (Shi, Zhou, Hwang, Titsias & Mackey
2022), whose control variates are built from a first-order expansion of ``f`` around the
other samples."""

from collections.abc import Callable

import torch
from pyro import poutine

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
    (whose derivative is zero) raises ``ValueError``, found on the first step of each
    model and guide.  Subclasses implement :meth:`_particle` from :meth:`_samples`.
    """

    bound_per_point = False
    leave_one_out = True

    def __init__(
        self, num_particles: int = 2, tune: bool = True, vectorize_particles: bool = False
    ) -> None:
        super().__init__(num_particles, vectorize_particles)
        self.tune = tune

    def _pass(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[tuple[poutine.Trace, poutine.Trace], set[str], dict[str, torch.Tensor]]:
        """The discrete pass, then the model and the guide at ``b_k`` as a real point
        (``RelaxedSampler(given=...)``), differentiated along it."""
        name = type(self).__name__
        sampler = DiscreteSampler(estimator=name)
        traces = discrete_pass(model, guide, args, kwargs, sampler)
        check_bernoulli(sampler.sites, name, ALTERNATIVES)
        if self._first_step:
            check_independent(guide, args, kwargs, name, ALTERNATIVES)
        discrete, (dims, ndim) = set(sampler.sites), factor_dims(*traces)
        values = {k: s.value.detach().requires_grad_() for k, s in sampler.sites.items()}
        at = RelaxedSampler(sampler.sites, given=values)
        # the guide's continuous values, and its data points, are those of the discrete pass
        guide = poutine.replay(guide, trace=continuous_sites(traces[1], discrete))

        def at_values(handler: Callable) -> tuple[poutine.Trace, poutine.Trace]:
            return relaxed_pass(handler(model), handler(guide), args, kwargs, at, name, traces[1])

        if self._first_step:
            check_differentiable_reads(at_values, at.values, name)
        f = costs(*at_values(lambda fn: fn), discrete, dims, ndim).value
        derivatives = torch.autograd.grad(f.sum(), list(values.values()))
        sites = list(sampler.sites.values())

        def laid_out(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(
                [
                    coordinates(t, s.event_dim, dims, ndim)
                    for t, s in zip(tensors, sites, strict=True)
                ],
                -1,
            )

        kept = {
            "logits": laid_out([s.logits for s in sites]),
            "value": laid_out([s.value for s in sites]),
            "derivative": laid_out(list(derivatives)),
        }
        return traces, discrete, kept

    def _variance(self, estimate: torch.Tensor) -> torch.Tensor:
        """What the tuned quantities descend, zero in value: the second moment of the
        estimate of the gradient with respect to the logits (of each element's
        coordinates), ``estimate``, a function of the tuned quantities and of values
        without gradients; the variance up to a constant, since the mean does not depend
        on them."""
        if not self.tune:
            return torch.zeros(())
        moment = estimate.pow(2).sum()
        return moment - moment.detach()
