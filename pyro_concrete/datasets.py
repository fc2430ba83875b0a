"""The fixed binarization of MNIST used by Maddison et al. (2017, Sec. 5.2), as tensors.

Found or fetched by :mod:`concrete_ppl.datasets`: the ``path`` given, else the file named
by ``CONCRETE_MNIST``, else a copy downloaded on first use into the user cache directory
and checked against its published SHA-256.
"""

import os

import torch

from concrete_ppl.datasets import read_binarized_mnist

__all__ = ["load_binarized_mnist"]


def load_binarized_mnist(
    path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """``{"train", "valid", "test"}`` -> ``(50000 | 10000 | 10000, 784)`` tensors of 0.0 / 1.0.

    :param path: a ``.npz`` file (keys ``train`` / ``valid`` / ``test``, rows
        ``numpy.packbits`` of the pixels) to read instead of ``CONCRETE_MNIST`` or the cache.
    :param dtype: the tensors' dtype.
    """
    return {k: torch.as_tensor(v).to(dtype) for k, v in read_binarized_mnist(path).items()}
