"""Parameter-free noise for the reparameterised samplers.

No ``U`` is ever exactly 0 or 1: both samplers transform ``U`` on the grid
``{k eps + eps/2 : k = 0 .. 1/eps - 1}`` (``jax.random.uniform`` draws multiples of
``eps`` in ``[0, 1 - eps]``, shifted here by half a step), which is symmetric about 1/2.
The Gumbel sample is ``G = -log(-log U)`` and the logistic ``L = log U - log(1 - U)``;
their tails are cut only where the grid ends (``|L| > log(2/eps)``, 16.6 in float32, and
``G`` outside ``[-2.9, 16.6]``: probabilities below 1e-7).
"""

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["gumbel", "logistic"]


def _open_uniform(key: Array, shape: tuple[int, ...], like: Array) -> Array:
    """``U ~ Uniform(0, 1)`` on the grid ``{k eps + eps/2}``, never 0 or 1."""
    return jax.random.uniform(key, shape, like.dtype) + jnp.finfo(like.dtype).eps / 2


def gumbel(key: Array, shape: tuple[int, ...], like: Array) -> Array:
    """Standard Gumbel noise ``G = -log(-log U)``."""
    return -jnp.log(-jnp.log(_open_uniform(key, shape, like)))


def logistic(key: Array, shape: tuple[int, ...], like: Array) -> Array:
    """Standard logistic noise ``L = log U - log(1 - U)``."""
    u = _open_uniform(key, shape, like)
    return jnp.log(u) - jnp.log1p(-u)
