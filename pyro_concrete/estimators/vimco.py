"""VIMCO: the multi-sample bound with leave-one-out baselines (Mnih & Rezende 2016)."""

import math
from collections.abc import Callable

import torch

from .multi_sample import MultiSampleELBO

__all__ = ["VimcoELBO"]


class VimcoELBO(MultiSampleELBO):
    r"""The ``K``-sample bound ``L = log (1/K) sum_k w_k``, ``w_k = p(x, z_k) / q(z_k)``,
    with the VIMCO gradient (Mnih & Rezende 2016, Eqs. 8-10):

    .. math::
        g = \sum_k (L - L_{-k}) \nabla \log q(z_k) + \sum_k \tilde w_k \nabla \log w_k,

    ``L_{-k}`` the bound with ``log w_k`` replaced by the mean of the others' (their
    geometric mean), ``w~`` the normalised weights.  The bound is taken per element of the
    plates enclosing every site (the data plate: ``K`` samples per data point), from each
    point's unscaled weights, and then multiplied by the point's scale: ``N / B`` under a
    subsampled data plate (NumPyro's ``RenyiELBO`` does the same), ``S`` under
    ``poutine.scale(scale=S)`` around the model and the guide (``LightningSVI``'s
    ``num_data / batch``), a scale tensor's value at the point.  A scale that differs
    between the sites of one point (on the model only, or on some sites) is a
    ``ValueError``: the bound of a point is one number, and there is no reading of it
    with its factors weighed apart.

    :param num_particles: ``K >= 2``, the samples of the bound (not averaged particles).
    :param vectorize_particles: draw them in one vectorised pass.
    """

    leave_one_out = True

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        samples, log_w, scale, _ = self._samples(model, guide, args, kwargs)
        k = self.num_particles
        bound = self._bound(log_w)
        others = self._others(log_w)
        eye = torch.eye(k, dtype=torch.bool).reshape((k, k) + (1,) * (log_w.dim() - 1))
        swapped = torch.where(eye, others.unsqueeze(1), log_w.unsqueeze(0))
        signal = (bound - (swapped.logsumexp(1) - math.log(k))).detach()
        score = sum(samples.score.values(), torch.zeros(()))
        weights = log_w.detach().softmax(0)
        surrogate = scale * (signal * score + weights * log_w).sum(0)
        return (scale * bound).sum(), surrogate.sum()
