"""Relaxed samples conditioned on the discrete sample they round to (Tucker et al. 2017,
Sec. 3 and App. C), shared by REBAR, RELAX and Gumbel-Rao.

A discrete sample is the rounding ``b = H(z)`` of a continuous ``z``: for a Bernoulli with
logits ``l``, ``z = l + L`` with logistic noise ``L`` and ``b = 1[z > 0]``; for a categorical
with log-probabilities ``log theta``, ``z_k = log theta_k + G_k`` with Gumbel noise ``G`` and
``b = argmax z``.  The functions here draw ``z~ ~ p(z | b)`` by inverting the truncated
conditional distributions, reparameterised in the logits (``b`` held fixed), and computed
in log space so that ``H(z~) = b`` holds exactly in float32 at any logits:

- Bernoulli, with ``s = 2 b - 1`` and ``v ~ Uniform(0, 1)``:
  ``z~ = s (softplus(s l + log v) - log(1 - v))``, the inverse conditional CDF
  ``l + logit(1 - theta + v theta)`` for ``b = 1`` (and its mirror image for ``b = 0``)
  rearranged into a sum of non-negative terms, the second strictly positive.
- Categorical (Tucker et al. 2017, App. C): with ``E = -log v``,
  ``z~_b = -log E_b`` (the maximum of ``log theta + G`` is a standard Gumbel) and, for
  ``i != b``, the Gumbel ``log theta_i + G_i`` truncated below ``z~_b``,
  ``z~_i = -log(E_i / theta_i + E_b)``, computed as ``-logaddexp(log E_i - log theta_i,
  log E_b)`` and kept strictly below ``z~_b`` (rounding can make it equal when
  ``E_i / theta_i`` is negligible next to ``E_b``).

The conditional uses ``-log(1 - v)``; ``log1p(v)`` in its place (storchastic 0.3.7) gives
samples that disagree with ``b`` about half the time and a biased REBAR.
"""

import torch
from torch.nn.functional import softplus

from .noise import _open_uniform

__all__ = ["bernoulli_conditional", "categorical_conditional"]


def bernoulli_conditional(logits: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``z~ ~ p(l + L | 1[l + L > 0] = b)`` for ``L`` standard logistic: ``z~ > 0`` exactly
    where ``b = 1``.  ``logits`` broadcasts against ``b``; the result has their shape."""
    logits, b = torch.broadcast_tensors(logits, b)
    v = _open_uniform(b.shape, logits)
    sign = 2 * b.to(logits.dtype) - 1
    return sign * (softplus(sign * logits + v.log()) - (-v).log1p())


def categorical_conditional(logits: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``z~ ~ p(log theta + G | argmax(log theta + G) = b)`` for ``G`` standard Gumbel, with
    ``log theta = log_softmax(logits)`` on the rightmost dimension and ``b`` the one-hot
    sample: ``argmax z~ = argmax b`` exactly."""
    log_theta = logits.log_softmax(-1)
    log_theta, b = torch.broadcast_tensors(log_theta, b)
    log_e = (-_open_uniform(b.shape, log_theta).log()).log()  # log E, E ~ Exponential(1)
    chosen = b > 0
    log_e_top = log_e.masked_fill(~chosen, -float("inf")).amax(-1, keepdim=True)
    top = -log_e_top
    # an impossible category (theta_i = 0) is -inf, computed without an inf - inf
    impossible = log_theta.isneginf()
    others = -torch.logaddexp(log_e - log_theta.masked_fill(impossible, 0.0), log_e_top)
    below = torch.nextafter(top, top.new_tensor(-float("inf")))
    others = torch.minimum(others, below).masked_fill(impossible, -float("inf"))
    return torch.where(chosen, top, others)
