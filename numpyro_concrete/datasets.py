"""The fixed binarization of MNIST used by Maddison et al. (2017, Sec. 5.2), as arrays.

Found or fetched by :mod:`concrete_ppl.datasets`: the ``path`` given, else the file named
by ``CONCRETE_MNIST``, else a copy downloaded on first use into the user cache directory
and checked against its published SHA-256.
"""

import os

import jax.numpy as jnp
from jax import Array

from concrete_ppl.datasets import read_binarized_mnist

__all__ = ["load_binarized_mnist"]


def load_binarized_mnist(
    path: str | os.PathLike | None = None, dtype: jnp.dtype = jnp.float32
) -> dict[str, Array]:
    """``{"train", "valid", "test"}`` -> ``(50000 | 10000 | 10000, 784)`` arrays of 0.0 / 1.0.

    :param path: a ``.npz`` file (keys ``train`` / ``valid`` / ``test``, rows
        ``numpy.packbits`` of the pixels) to read instead of ``CONCRETE_MNIST`` or the cache.
    :param dtype: the arrays' dtype.
    """
    return {k: jnp.asarray(v, dtype=dtype) for k, v in read_binarized_mnist(path).items()}
