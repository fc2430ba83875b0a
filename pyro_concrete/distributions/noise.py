"""Parameter-free noise for the reparameterised samplers (design.md section 3).

Both draws avoid ``U`` that is exactly 0 or 1: the Gumbel sample is ``-log E`` with
``E ~ Exponential(1)`` kept above the smallest normal number, and the logistic sample
``log U - log(1 - U)`` uses ``U`` on the grid ``{k eps + eps/2}``, ``k = 0 .. 1/eps - 1``:
``torch.rand`` draws multiples of ``eps/2``, rounded down to multiples of ``eps`` and
shifted by half a step, so ``U`` lies in ``[eps/2, 1 - eps/2]``, symmetric about 1/2, and
the tails of ``L`` are cut only beyond ``|L| > log(2/eps)`` (16.6 in float32).
"""

import torch

__all__ = ["gumbel", "logistic"]


def gumbel(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``G = -log E``, ``E ~ Exponential(1)``."""
    e = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_()
    return e.clamp_(min=torch.finfo(like.dtype).tiny).log_().neg_()


def logistic(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Standard logistic noise ``L = log U - log(1 - U)``, ``U ~ Uniform(0, 1)``."""
    eps = torch.finfo(like.dtype).eps
    u = torch.rand(shape, dtype=like.dtype, device=like.device).div_(eps).floor_()
    u = u.mul_(eps).add_(eps / 2)
    return u.log() - (-u).log1p_()
