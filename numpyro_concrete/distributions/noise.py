"""Parameter-free noise for the reparameterised samplers (design.md section 3).

Both draws avoid ``U`` that is exactly 0 or 1: the Gumbel sample is ``-log E`` with
``E ~ Exponential(1)`` kept above the smallest normal number, and the logistic sample
``log U - log(1 - U)`` uses ``U`` on the generator's grid shifted by half a step:
``jax.random.uniform`` draws multiples of ``eps`` in ``[0, 1 - eps]``, so ``U + eps/2``
lies on the grid ``[eps/2, 1 - eps/2]``, symmetric about 1/2, with its tails cut only
beyond ``|L| > log(2/eps)`` (16.6 in float32).

The draws, like the densities, are jitted: eager use compiles one kernel per shape
instead of one per primitive, and an enclosing ``jit`` inlines them.
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["gumbel", "logistic"]


@partial(jax.jit, static_argnums=1)
def gumbel(key: Array, shape: tuple[int, ...], like: Array) -> Array:
    """Standard Gumbel noise ``G = -log E``, ``E ~ Exponential(1)``."""
    e = jax.random.exponential(key, shape, like.dtype)
    return -jnp.log(jnp.maximum(e, jnp.finfo(like.dtype).tiny))


@partial(jax.jit, static_argnums=1)
def logistic(key: Array, shape: tuple[int, ...], like: Array) -> Array:
    """Standard logistic noise ``L = log U - log(1 - U)``, ``U ~ Uniform(0, 1)``."""
    half_eps = jnp.finfo(like.dtype).eps / 2
    u = jax.random.uniform(key, shape, like.dtype) + half_eps
    return jnp.log(u) - jnp.log1p(-u)
