"""The fixed binarization of MNIST used by Maddison et al. (2017, Sec. 5.2).

The file is never part of the repository: pass its path, or set ``CONCRETE_MNIST``
(the Makefile and CI do).  Format: keys ``train`` / ``valid`` /
``test`` (50,000 / 10,000 / 10,000 rows), each row ``numpy.packbits`` of 784 pixels.
"""

import os

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["load_binarized_mnist"]

ENV_VAR = "CONCRETE_MNIST"


def _unpacked(path: str | os.PathLike | None) -> dict[str, np.ndarray]:
    path = path or os.environ.get(ENV_VAR)
    if not path or not os.path.exists(path):
        raise FileNotFoundError(
            f"binarized MNIST not found at {path!r}: pass its path or set {ENV_VAR}="
            "/path/to/binarized_mnist.npz"
        )
    with np.load(path) as packed:
        return {k: np.unpackbits(packed[k], axis=1)[:, :784] for k in ("train", "valid", "test")}


def load_binarized_mnist(
    path: str | os.PathLike | None = None, dtype: jnp.dtype = jnp.float32
) -> dict[str, Array]:
    """``{"train", "valid", "test"}`` -> ``(rows, 784)`` arrays of 0.0 / 1.0."""
    return {k: jnp.asarray(v, dtype=dtype) for k, v in _unpacked(path).items()}
