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
from .relaxed import RelaxedDiscrete, RelaxedTransformed, validated_log_prob
from .transforms import UnclampedSigmoidTransform

__all__ = ["BinaryConcrete", "LogitBinaryConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.unit_interval,
    "logits": constraints.real,
}


def log_logistic(logits: Array, temperature: Array, y: ArrayLike) -> Array:
    """Density of ``y = logit(X)`` (App. B, Eq. 24):
    ``log lambda + log alpha - lambda y - 2 softplus(log alpha - lambda y)``."""
    score = logits - temperature * y
    return jnp.log(temperature) + score - 2 * softplus(score)


def _log_binary_concrete_interior(logits: Array, temperature: Array, y: Array) -> Array:
    """Binary Concrete log density (App. B, Eq. 21) at a finite ``y = logit x``."""
    return log_logistic(logits, temperature, y) + softplus(y) + softplus(-y)


def _log_binary_concrete(logits: Array, temperature: Array, x: ArrayLike) -> Array:
    """Binary Concrete log density (App. B, Eq. 21) w.r.t. Lebesgue on (0, 1) at a value ``x``:
    ``log g(y) - log x - log(1 - x)`` at ``y = logit x = log x - log(1 - x)``, each log
    taken once (the sample path's ``softplus(-y)`` and ``softplus(y)`` would recompute them).

    At ``x = 0`` the density behaves as ``(lambda / alpha) x^(lambda - 1)`` and at ``x = 1``
    as ``lambda alpha (1 - x)^(lambda - 1)``: the value there is the limit, ``+inf``
    (lambda < 1), ``-inf`` (lambda > 1) or ``log lambda -/+ log alpha`` (lambda = 1).
    Both branches are computed on finite stand-ins, so neither value nor gradient is NaN.
    """
    x = jnp.asarray(x)
    inside = (x > 0) & (x < 1)
    safe = jnp.where(inside, x, 0.5)
    log_x, log_1mx = jnp.log(safe), jnp.log1p(-safe)
    interior = log_logistic(logits, temperature, log_x - log_1mx) - log_x - log_1mx
    exponent = temperature - 1
    limit_at_e0 = jnp.log(temperature) + jnp.where(x > 0, logits, -logits)
    limit = jnp.where(exponent < 0, jnp.inf, jnp.where(exponent > 0, -jnp.inf, limit_at_e0))
    return jnp.where(inside, interior, limit)


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

    @validated_log_prob
    def log_prob(self, value: ArrayLike) -> Array:
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
    A sample keeps its exact logit in its intermediates, so ``log_prob(x, intermediates)``
    is the density at the exact point, even where it rounded to 0 or 1.
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
