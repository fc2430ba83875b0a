"""The Binary Concrete distribution and its logit (Maddison, Mnih & Teh 2017, App. B).

``LogitBinaryConcrete`` is the logistic ``Logistic(log alpha / lambda, 1 / lambda)``;
``BinaryConcrete`` is it pushed through an exact, cached sigmoid.
"""

import math

import torch
from torch.distributions import constraints
from torch.nn.functional import softplus

from ..constraints import finite_real, positive_finite
from .noise import logistic
from .relaxed import RelaxedDiscrete, RelaxedTransformed
from .transforms import UnclampedSigmoidTransform

__all__ = ["BinaryConcrete", "LogitBinaryConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.unit_interval,
    "logits": finite_real,
}


def log_logistic(logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Density of ``y = logit(X)`` (App. B, Eq. 24):
    ``log lambda + log alpha - lambda y - 2 softplus(log alpha - lambda y)``."""
    score = logits - temperature * y
    return temperature.log() + score - 2 * softplus(score)


def _log_binary_concrete_interior(
    logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Binary Concrete log density (App. B, Eq. 21) at a finite ``y = logit x``."""
    return log_logistic(logits, temperature, y) + softplus(y) + softplus(-y)


def _log_binary_concrete(
    logits: torch.Tensor, temperature: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Binary Concrete log density (App. B, Eq. 21) w.r.t. Lebesgue on (0, 1) at a value ``x``:
    ``log g(y) - log x - log(1 - x)`` at ``y = logit x = log x - log(1 - x)``, each log
    taken once (the sample path's ``softplus(-y)`` and ``softplus(y)`` would recompute them).

    At ``x = 0`` the density behaves as ``(lambda / alpha) x^(lambda - 1)`` and at ``x = 1``
    as ``lambda alpha (1 - x)^(lambda - 1)``: the value there is the limit, ``+inf``
    (lambda < 1), ``-inf`` (lambda > 1) or ``log lambda -/+ log alpha`` (lambda = 1).
    """
    inside = (x > 0) & (x < 1)
    safe = torch.where(inside, x, 0.5)
    log_x, log_1mx = safe.log(), (-safe).log1p()
    interior = log_logistic(logits, temperature, log_x - log_1mx) - log_x - log_1mx
    if inside.all():
        return interior
    exponent = temperature - 1
    limit_at_e0 = temperature.log() + torch.where(x > 0, logits, -logits)
    limit = torch.where(exponent < 0, math.inf, torch.where(exponent > 0, -math.inf, limit_at_e0))
    return torch.where(inside, interior, limit)


class LogitBinaryConcrete(RelaxedDiscrete):
    r"""Logit of a Binary Concrete variable: ``Y = (log alpha + L) / lambda``.

    ``Y ~ Logistic(log alpha / lambda, 1 / lambda)`` on the real line; ``log_prob`` is
    App. B Eq. 24 w.r.t. Lebesgue measure, finite for every real ``y``.  This is the
    stochastic node the paper recommends training with (App. C.3).

    :param temperature: lambda > 0, broadcast against the logits' shape.
    :param probs: ``alpha / (1 + alpha)``, the probability of the Bernoulli relaxed.
    :param logits: ``log alpha``.
    """

    _categorical = False
    arg_constraints = _ARG_CONSTRAINTS
    support = constraints.real
    has_rsample = True

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return (self.logits + logistic(shape, self.logits)) / self.temperature

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return log_logistic(self.logits, self.temperature, value)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return (self.temperature * value - self.logits).sigmoid()

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return (self.logits + value.logit()) / self.temperature

    @property
    def mean(self) -> torch.Tensor:
        return self.logits / self.temperature

    @property
    def mode(self) -> torch.Tensor:
        return self.logits / self.temperature

    @property
    def variance(self) -> torch.Tensor:
        return (math.pi**2 / 3) / self.temperature**2

    def entropy(self) -> torch.Tensor:
        """Logistic entropy ``log(scale) + 2`` with scale ``1 / lambda``."""
        return 2 - self.temperature.log()


class BinaryConcrete(RelaxedTransformed):
    r"""The Binary Concrete ``X = sigmoid((log alpha + L) / lambda)`` (App. B).

    Support: the unit interval.  ``log_prob`` is App. B Eq. 21 w.r.t. Lebesgue measure.
    A sample is a ``RelaxedSample`` that carries its exact logit, so ``log_prob`` of it
    (by this distribution or another ``BinaryConcrete``: a model's prior scoring a
    guide's sample) is the density at the exact point, even where it rounded to 0 or 1.
    A value without it at 0 or 1 gets the density's limit (``+inf`` when lambda < 1, with
    a warning), never NaN; no clamping.  In float32 a sample rounds there at low
    temperature or large ``|logits|``: make ``LogitBinaryConcrete`` the latent site of a
    model, and ``sigmoid`` its value, where finite densities matter.

    :param temperature: lambda > 0, broadcast against the logits' shape.
    :param probs: ``alpha / (1 + alpha)``, the probability of the Bernoulli relaxed.
    :param logits: ``log alpha``.
    """

    arg_constraints = _ARG_CONSTRAINTS
    support = constraints.unit_interval
    base_class = LogitBinaryConcrete
    transform_class = UnclampedSigmoidTransform
    log_density = staticmethod(_log_binary_concrete)
    log_density_interior = staticmethod(_log_binary_concrete_interior)
