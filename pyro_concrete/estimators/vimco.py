"""VIMCO: the multi-sample bound with leave-one-out baselines (Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import torch
from pyro import poutine

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
    :param vectorize_particles: draw them in one vectorised pass.
    """

    def __init__(self, num_particles: int = 2, vectorize_particles: bool = False) -> None:
        if not isinstance(num_particles, int) or num_particles < 2:
            raise ValueError(
                f"VimcoELBO: num_particles is the K of the K-sample bound and must be an "
                f"int >= 2 (leave-one-out baselines), got {num_particles!r}."
            )
        super().__init__(num_particles, vectorize_particles)

    def _samples(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[Costs, float]:
        """The :class:`Costs` of the ``K`` samples, stacked on dim 0, and the subsampling
        scale ``N / B``."""
        samples, subsample = [], poutine.Trace()
        for model_k, guide_k in self._passes(model, guide, args, kwargs):
            sampler = DiscreteSampler(estimator="VimcoELBO")
            # the K samples of a point's bound share the data plate's subsample
            guide_k = poutine.replay(guide_k, trace=subsample)
            traces = discrete_pass(model_k, guide_k, args, kwargs, sampler)
            subsample = subsample_sites(traces[1])
            dims, ndim = factor_dims(*traces)
            scale = subsample_scale(traces[0], dims, "VimcoELBO")
            samples.append(costs(*traces, set(sampler.sites), dims, ndim))
        if len(samples) == 1:  # vectorised: the particle plate is the leftmost dim
            return samples[0], scale
        stacked = Costs(
            torch.stack([s.value for s in samples]),
            torch.stack([s.direct for s in samples]),
            {k: torch.stack([s.score[k] for s in samples]) for k in samples[0].score},
        )
        return stacked, scale

    def _estimate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        samples, scale = self._samples(model, guide, args, kwargs)
        # the bound of each element from its unscaled weights, then scaled (RenyiELBO's rule)
        log_w, k = samples.value / scale, self.num_particles
        bound = log_w.logsumexp(0) - math.log(k)
        others = (log_w.sum(0, keepdim=True) - log_w) / (k - 1)
        eye = torch.eye(k, dtype=torch.bool).reshape((k, k) + (1,) * (log_w.dim() - 1))
        swapped = torch.where(eye, others.unsqueeze(1), log_w.unsqueeze(0))
        signal = (bound - (swapped.logsumexp(1) - math.log(k))).detach()
        score = sum(samples.score.values(), torch.zeros(()))
        weights = log_w.detach().softmax(0)
        surrogate = (signal * score).sum() + (weights * log_w).sum()
        return scale * bound.sum(), scale * surrogate
