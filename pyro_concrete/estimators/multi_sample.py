"""The ``K``-sample bound ``L = log (1/K) sum_k w_k`` of each data point, the objective that
VIMCO (discrete sites) and the importance-weighted ELBO (reparameterised sites) estimate
the gradient of (Burda, Grosse & Salakhutdinov 2016, Eq. 8; Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import torch
from pyro import poutine

from ..plates import element_scale, factor_dims
from .elbo import DiscreteELBO
from .traces import Costs, DiscreteSampler, costs, discrete_pass, subsample_sites, validated

__all__ = ["MultiSampleELBO"]


class MultiSampleELBO(DiscreteELBO):
    """The ``K = num_particles`` samples taken per element of the plates that enclose
    every site (the data plate: ``K`` samples per data point), all sharing the data
    plate's subsample and stacked on a sample dim: what one call of :meth:`_particle`
    takes (a ``K``-sample bound, RLOO's leave-one-out baselines, NVIL's moments over a
    step's samples).  Each element's bound is taken from its unscaled weights and then
    multiplied by the element's scale (subsampling's ``N / B``, ``poutine.scale``), so a
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

    def __init__(
        self,
        num_particles: int = 2,
        vectorize_particles: bool = False,
        max_plate_nesting: float = float("inf"),
    ) -> None:
        if self.leave_one_out and (not isinstance(num_particles, int) or num_particles < 2):
            raise ValueError(
                f"{type(self).__name__}: num_particles is the K of its K samples per data "
                f"point and must be an int >= 2 (leave-one-out baselines), got "
                f"{num_particles!r}."
            )
        super().__init__(num_particles, vectorize_particles, max_plate_nesting)

    def _pass(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[tuple[poutine.Trace, poutine.Trace], set[str], dict[str, torch.Tensor]]:
        """One sample's traces, discrete sites, and the tensors the estimator keeps of it
        besides its costs, by name: the discrete pass, keeping nothing, by default."""
        sampler = DiscreteSampler(estimator=type(self).__name__)
        traces = discrete_pass(model, guide, args, kwargs, sampler)
        return traces, set(sampler.sites), {}

    def _samples(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[Costs, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``(costs, log_w, scale, kept)``: the :class:`Costs` of the ``K`` samples stacked
        on dim 0, their unscaled log weights, the scale of each element (no sample dim),
        and what :meth:`_pass` kept of each sample, stacked on dim 0."""
        samples, kept, subsample = [], [], poutine.Trace()
        for k, (model_k, guide_k) in enumerate(self._passes(model, guide, args, kwargs)):
            # the K samples of a point's bound share the data plate's subsample
            with validated(self._first_step or k == 0):
                traces, discrete, keep = self._pass(
                    model_k, poutine.replay(guide_k, trace=subsample), args, kwargs
                )
            subsample = subsample_sites(traces[1])
            dims, ndim = factor_dims(*traces)
            scale = (
                element_scale(traces, dims, ndim, type(self).__name__)
                if self.bound_per_point
                else torch.ones(1)
            )
            samples.append(costs(*traces, discrete, dims, ndim))
            kept.append(keep)
        if self.vectorize_particles and self.num_particles > 1:
            # one vectorised pass: the particle plate is the leftmost dim
            stacked, scale, kept = samples[0], scale[0], kept[0]
        else:
            stacked = Costs(
                torch.stack([s.value for s in samples]),
                torch.stack([s.direct for s in samples]),
                {k: torch.stack([s.score[k] for s in samples]) for k in samples[0].score},
            )
            kept = {k: torch.stack([keep[k] for keep in kept]) for k in kept[0]}
        # an element of scale 0 has log densities 0, and keeps the weights 0
        log_w = stacked.value / torch.where(scale == 0, torch.ones_like(scale), scale)
        return stacked, log_w, scale, kept

    def _others(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over the other samples (dim 0) of each sample's ``x``: the
        leave-one-out baselines."""
        return (x.sum(0, keepdim=True) - x) / (self.num_particles - 1)

    def _bound(self, log_w: torch.Tensor) -> torch.Tensor:
        """``log (1/K) sum_k w_k`` of each element."""
        return log_w.logsumexp(0) - math.log(self.num_particles)
