"""Exact maps from the log-space variables onto the relaxed values.

NumPyro's ``SigmoidTransform`` clamps its output into ``[tiny, 1 - eps]`` and its
``ExpTransform`` is elementwise; neither is right here.  These two compute the exact
map and invert to ``-inf``/``+inf`` (with zero, not NaN, gradients) on the boundary.
JAX has no transform cache: a sample's exact log-space value travels in NumPyro's
intermediates instead (``RelaxedTransformed.sample_with_intermediates``).
"""

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import ParameterFreeTransform

from ..constraints import log_simplex

__all__ = ["SimplexExpTransform", "UnclampedSigmoidTransform"]


class SimplexExpTransform(ParameterFreeTransform):
    """``x = exp(y)`` from the log-simplex onto the simplex.

    Both densities are taken on the first ``n - 1`` coordinates, so
    ``log|det J| = sum_{k<n} y_k``.
    """

    domain = log_simplex
    codomain = constraints.simplex

    def __call__(self, y: ArrayLike) -> Array:
        return jnp.exp(y)

    def _inverse(self, x: ArrayLike) -> Array:
        zero = jnp.asarray(x) == 0
        return jnp.where(zero, -jnp.inf, jnp.log(jnp.where(zero, 1.0, x)))

    def log_abs_det_jacobian(self, y: ArrayLike, x: ArrayLike, intermediates: None = None) -> Array:
        return jnp.asarray(y)[..., :-1].sum(-1)


class UnclampedSigmoidTransform(ParameterFreeTransform):
    """``x = sigmoid(y)`` from the real line onto ``[0, 1]``, without clamping."""

    domain = constraints.real
    codomain = constraints.unit_interval
    sign = 1

    def __call__(self, y: ArrayLike) -> Array:
        return jax.nn.sigmoid(y)

    def _inverse(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        inside = (x > 0) & (x < 1)
        safe = jnp.where(inside, x, 0.5)
        y = jnp.log(safe) - jnp.log1p(-safe)
        return jnp.where(inside, y, jnp.where(x > 0, jnp.inf, -jnp.inf))

    def log_abs_det_jacobian(self, y: ArrayLike, x: ArrayLike, intermediates: None = None) -> Array:
        return -jax.nn.softplus(-y) - jax.nn.softplus(y)
