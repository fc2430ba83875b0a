"""Parameter-free noise for the reparameterised samplers (design.md section 3).

Both draws avoid ``U`` that is exactly 0 or 1: the Gumbel sample is ``-log E`` with
``E ~ Exponential(1)`` kept above the smallest normal number, and the logistic sample
``log U - log(1 - U)`` clamps ``U`` symmetrically to the generator's grid
``[eps/2, 1 - eps/2]`` (``torch.rand`` draws multiples of ``eps/2``), so its law is
symmetric and its tails are cut only beyond ``|L| > log(2/eps)`` (16.6 in float32).
"""

import torch

__all__ = ["gumbel", "logistic"]


def gumbel(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``G = -log E``, ``E ~ Exponential(1)``."""
    e = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_()
    return e.clamp_(min=torch.finfo(like.dtype).tiny).log_().neg_()


def logistic(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Standard logistic noise ``L = log U - log(1 - U)``, ``U ~ Uniform(0, 1)``."""
    half_eps = torch.finfo(like.dtype).eps / 2
    u = torch.rand(shape, dtype=like.dtype, device=like.device).clamp_(half_eps, 1 - half_eps)
    return u.log() - (-u).log1p_()
