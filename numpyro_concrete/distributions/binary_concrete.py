"""The Binary Concrete distribution and its logit (Maddison, Mnih & Teh 2017, App. B).

``LogitBinaryConcrete`` is the logistic ``Logistic(log alpha / lambda, 1 / lambda)``;
``BinaryConcrete`` is it pushed through an exact sigmoid, the exact logit of a sample
kept in the intermediates.
"""

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.nn import softplus
from jax.scipy.special import logit
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from ..constraints import positive_finite
from .noise import logistic
from .relaxed import RelaxedDiscrete, RelaxedTransformed
from .transforms import UnclampedSigmoidTransform

__all__ = ["BinaryConcrete", "LogitBinaryConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.unit_interval,
    "logits": constraints.real,
}


@jax.jit
def log_logistic(logits: Array, temperature: Array, y: ArrayLike) -> Array:
    """Density of ``y = logit(X)`` (App. B, Eq. 24):
    ``log lambda + log alpha - lambda y - 2 softplus(log alpha - lambda y)``."""
    score = logits - temperature * y
    return jnp.log(temperature) + score - 2 * softplus(score)


@jax.jit
def _log_binary_concrete_interior(logits: Array, temperature: Array, y: Array) -> Array:
    """Binary Concrete log density (App. B, Eq. 21) at a finite ``y = logit x``."""
    return log_logistic(logits, temperature, y) + softplus(y) + softplus(-y)


def _log_binary_concrete(logits: Array, temperature: Array, y: Array) -> Array:
    """Binary Concrete log density (App. B, Eq. 21) w.r.t. Lebesgue on (0, 1), at ``y = logit x``:
    ``log g(y) - log x - log(1 - x)`` with ``-log x = softplus(-y)``, ``-log(1 - x) = softplus(y)``.

    At ``x = 0`` (``y = -inf``) the density behaves as ``(lambda / alpha) x^(lambda - 1)`` and
    at ``x = 1`` as ``lambda alpha (1 - x)^(lambda - 1)``: the value there is the limit,
    ``+inf`` (lambda < 1), ``-inf`` (lambda > 1) or ``log lambda -/+ log alpha`` (lambda = 1).
    Both branches are computed on finite stand-ins, so neither value nor gradient is NaN.
    """
    edge = jnp.isinf(y)
    y_in = jnp.where(edge, 0.0, y)
    interior = _log_binary_concrete_interior(logits, temperature, y_in)
    exponent = temperature - 1
    limit_at_e0 = jnp.log(temperature) + jnp.sign(y) * logits
    limit = jnp.where(exponent < 0, jnp.inf, jnp.where(exponent > 0, -jnp.inf, limit_at_e0))
    return jnp.where(edge, limit, interior)


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

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self.shape(sample_shape)
        return (self.logits + logistic(key, shape, self.logits)) / self.temperature

    def log_prob(self, value: ArrayLike) -> Array:
        if self._validate_args:
            self._validate_sample(value)
        return log_logistic(self.logits, self.temperature, value)

    def cdf(self, value: ArrayLike) -> Array:
        return jax.nn.sigmoid(self.temperature * value - self.logits)

    def icdf(self, value: ArrayLike) -> Array:
        return (self.logits + logit(value)) / self.temperature

    @property
    def mean(self) -> Array:
        return self.logits / self.temperature

    @property
    def mode(self) -> Array:
        return self.logits / self.temperature

    @property
    def variance(self) -> Array:
        return (math.pi**2 / 3) / self.temperature**2

    def entropy(self) -> Array:
        """Logistic entropy ``log(scale) + 2`` with scale ``1 / lambda``."""
        return 2 - jnp.log(self.temperature)


class BinaryConcrete(RelaxedTransformed):
    r"""The Binary Concrete ``X = sigmoid((log alpha + L) / lambda)`` (App. B).

    Support: the unit interval.  ``log_prob`` is App. B Eq. 21 w.r.t. Lebesgue measure.
    A sample keeps its exact logit in its intermediates, so ``log_prob`` of a sample
    that rounded to 0 or 1 is still the density at the exact point; other values on the
    boundary get the density's limit, never NaN.  No clamping.

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
