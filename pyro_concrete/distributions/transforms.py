"""Exact, cached maps from the log-space variables onto the relaxed values.

torch's ``SigmoidTransform`` clamps its output into ``[tiny, 1 - eps]`` and its
``ExpTransform`` is elementwise; neither is right here.  These two compute the exact
map, cache the last pair so that ``log_prob`` of a sample is evaluated at its exact
log-space value even when a coordinate of the relaxed value underflowed, and invert to
``-inf``/``+inf`` (with zero, not NaN, gradients) on the boundary.
"""

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ..constraints import log_simplex

__all__ = ["SimplexExpTransform", "UnclampedSigmoidTransform"]


class SimplexExpTransform(Transform):
    """``x = exp(y)`` from the log-simplex onto the simplex.

    Both densities are taken on the first ``n - 1`` coordinates, so
    ``log|det J| = sum_{k<n} y_k``.
    """

    domain = log_simplex
    codomain = constraints.simplex
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimplexExpTransform)

    def _call(self, y: torch.Tensor) -> torch.Tensor:
        return y.exp()

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        zero = x == 0
        return x.masked_fill(zero, 1.0).log().masked_fill(zero, -float("inf"))

    def log_abs_det_jacobian(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return y[..., :-1].sum(-1)


class UnclampedSigmoidTransform(Transform):
    """``x = sigmoid(y)`` from the real line onto ``[0, 1]``, without clamping."""

    domain = constraints.real
    codomain = constraints.unit_interval
    bijective = True
    sign = +1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnclampedSigmoidTransform)

    def _call(self, y: torch.Tensor) -> torch.Tensor:
        return y.sigmoid()

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x > 0) & (x < 1)
        safe = torch.where(inside, x, 0.5)
        y = safe.log() - (-safe).log1p()
        return torch.where(inside, y, torch.where(x > 0, float("inf"), -float("inf")))

    def log_abs_det_jacobian(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -torch.nn.functional.softplus(-y) - torch.nn.functional.softplus(y)
