"""The Concrete distribution and its log-space twin (Maddison, Mnih & Teh 2017).

``ExpConcrete`` carries the mathematics; ``Concrete`` is ``ExpConcrete`` pushed through
``exp`` (a cached ``SimplexExpTransform``), following the paper's App. C.3 advice to
make the log-space variable the stochastic node.
"""

import math

import torch
from torch.distributions import constraints

from ..constraints import log_simplex, positive_finite
from .noise import gumbel
from .relaxed import RelaxedDiscrete, RelaxedTransformed, no_closed_form, no_closed_form_error
from .transforms import SimplexExpTransform

__all__ = ["Concrete", "ExpConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.simplex,
    "logits": constraints.real_vector,
}


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last dimension.  torch's CPU kernel and its backward are
    several times slower than elementwise code when that dimension is narrower than its
    vector width (16), and faster beyond (benchmarks/throughput.py).  As in the kernel,
    the maximum is subtracted first (exactly; the result does not depend on it), so the
    largest coordinate is accurate to an ulp of ``log n``, not of ``max(x)``."""
    if x.size(-1) >= 16:
        return x.log_softmax(-1)
    x = x - x.detach().amax(-1, keepdim=True)
    return x - x.exp().sum(-1, keepdim=True).log()


def _log_exp_concrete_unnormalised(
    logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """The paper's log-space density (App. C.3, Eq. 26) at ``y = log x``:

    ``log Gamma(n) + (n-1) log lambda + sum_k (log alpha_k - lambda y_k)
    - n logsumexp_k(log alpha_k - lambda y_k)``, computed as
    ``log Gamma(n) + (n-1) log lambda + sum_k log_softmax(log alpha - lambda y)_k``.
    It is the Concrete density times ``prod_{k=1..n} x_k`` (design.md section 2).
    """
    n = logits.size(-1)
    scores = logits - temperature.unsqueeze(-1) * y
    return math.lgamma(n) + (n - 1) * temperature.log() + _log_softmax(scores).sum(-1)


def _log_concrete_interior(
    logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Concrete log density (Eq. 11) at a finite ``y = log x``: Eq. 26 minus ``sum_k y_k``."""
    return _log_exp_concrete_unnormalised(logits, temperature, y) - y.sum(-1)


def _log_concrete(logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Concrete log density (Eq. 11) w.r.t. Lebesgue on ``x_1, ..., x_{n-1}``, at ``y = log x``.

    On the boundary (``m >= 1`` coordinates ``x_J = 0``, i.e. ``y_J = -inf``) the value is
    the limit along ``x_J = eps -> 0``: the density behaves as ``eps^e * exp(K)`` with
    ``e = (n - m) lambda - m`` and
    ``K = log Gamma(n) + (n-1) log lambda + sum_k log alpha_k
    - (lambda + 1) sum_{k not in J} y_k - n logsumexp_{k in J} log alpha_k``,
    so the limit is ``+inf`` (``e < 0``), ``-inf`` (``e > 0``) or ``K`` (``e = 0``).
    """
    zero = y == -math.inf
    y = y.masked_fill(zero, 0.0)
    interior = _log_concrete_interior(logits, temperature, y)
    if not zero.any():
        return interior
    n = logits.size(-1)
    m = zero.sum(-1)
    exponent = (n - m) * temperature - m
    in_j = zero | (m == 0).unsqueeze(-1)  # rows off the boundary: any finite stand-in
    limit_at_e0 = (
        math.lgamma(n)
        + (n - 1) * temperature.log()
        + logits.sum(-1)
        - (temperature + 1) * y.sum(-1)
        - n * logits.masked_fill(~in_j, -math.inf).logsumexp(-1)
    )
    limit = torch.where(exponent < 0, math.inf, torch.where(exponent > 0, -math.inf, limit_at_e0))
    return torch.where(m > 0, limit, interior)


class ExpConcrete(RelaxedDiscrete):
    r"""Log of a Concrete variable: ``Y = log_softmax((log alpha + G) / lambda)``.

    Support: the log-simplex ``{y : logsumexp(y) = 0}``.  ``log_prob`` is the density of
    ``(y_1, ..., y_{n-1})`` w.r.t. Lebesgue measure, the chart that
    ``biject_to(log_simplex)`` parameterises; it is normalised, unlike the paper's
    Eq. 26, from which it differs by ``-y_n`` (design.md section 2).  This is the
    stochastic node the paper recommends training with (App. C.3): its log density
    of its own samples is finite at any temperature in float32.

    :param temperature: lambda > 0, broadcast against the logits' batch shape.
    :param probs: event probabilities ``alpha / sum(alpha)`` (last dim: categories).
    :param logits: ``log alpha``, unnormalised.
    """

    arg_constraints = _ARG_CONSTRAINTS
    support = log_simplex
    has_rsample = True

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        scores = (self.logits + gumbel(shape, self.logits)) / self.temperature.unsqueeze(-1)
        return _log_softmax(scores)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_p = _log_exp_concrete_unnormalised(self.logits, self.temperature, value)
        return log_p - value[..., -1]

    mean = no_closed_form("mean", "E[log_softmax((log alpha + G) / lambda)] is not elementary")
    mode = no_closed_form("mode", "the maximiser of the density has no closed form")
    variance = no_closed_form("variance", "moments of log_softmax of Gumbels are not elementary")

    def entropy(self) -> torch.Tensor:
        raise no_closed_form_error(self, "entropy()", "E[log p(X)] is not elementary")


class Concrete(RelaxedTransformed):
    r"""The Concrete distribution ``X = softmax((log alpha + G) / lambda)`` (Eq. 10).

    Support: the simplex.  ``log_prob`` is Eq. 11 w.r.t. Lebesgue measure on
    ``(x_1, ..., x_{n-1})`` (the chart of ``biject_to(simplex)``).  A sample keeps its
    exact log-space value in a cached transform, so ``log_prob`` of a sample whose
    coordinates underflowed to 0 is still the density at the exact point; other values
    on the boundary get the density's limit, never NaN.

    :param temperature: lambda > 0, broadcast against the logits' batch shape.
    :param probs: event probabilities ``alpha / sum(alpha)`` (last dim: categories).
    :param logits: ``log alpha``, unnormalised.
    """

    arg_constraints = _ARG_CONSTRAINTS
    support = constraints.simplex
    base_class = ExpConcrete
    transform_class = SimplexExpTransform
    log_density = staticmethod(_log_concrete)
    log_density_interior = staticmethod(_log_concrete_interior)
