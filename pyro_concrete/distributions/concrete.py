"""The Concrete distribution and its log-space twin (Maddison, Mnih & Teh 2017).

``ExpConcrete`` carries the mathematics; ``Concrete`` is ``ExpConcrete`` pushed through
``exp`` (a cached ``SimplexExpTransform``), following the paper's App. C.3 advice to
make the log-space variable the stochastic node.
"""

import math

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ..constraints import log_simplex, masked_logits, positive_finite
from .noise import gumbel
from .relaxed import (
    RelaxedDiscrete,
    RelaxedTransformed,
    check_event_shape,
    no_closed_form,
    no_closed_form_error,
)
from .transforms import SimplexExpTransform

__all__ = ["Concrete", "ExpConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.simplex,
    "logits": masked_logits,
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


def _log_softmax_sum(x: torch.Tensor) -> torch.Tensor:
    """``sum_k log_softmax(x)_k = sum_k x_k - n logsumexp(x)`` over the last dimension.
    Below torch's vector width (16, as in ``_log_softmax``) computed so: the backward of
    ``logsumexp`` is one elementwise pass, against five for ``_log_softmax``'s."""
    if x.size(-1) >= 16:
        return x.log_softmax(-1).sum(-1)
    return x.sum(-1).sub(x.logsumexp(-1), alpha=x.size(-1))


def _on_log_simplex(y: torch.Tensor) -> torch.Tensor:
    """``y`` (a ``log_softmax``) shifted by ``-log sum exp(y)``, so that ``exp(y)`` sums
    to 1 within a few ulps at any width.  torch's kernel accumulates ``sum exp`` in each
    vector lane sequentially, so its normaliser drifts with the width (``exp(y)`` summed
    to 1 only within 5e-6 at n = 3e4 in float32, beyond the simplex's tolerance);
    ``torch.sum`` sums in a cascade.  The shift is a constant per row: the gradient is
    unchanged.  Below the kernel's width ``_log_softmax`` already sums with ``torch.sum``."""
    if y.size(-1) < 16:
        return y
    return y - y.detach().exp().sum(-1, keepdim=True).log()


def _per_row(temperature: torch.Tensor) -> torch.Tensor:
    """The temperature against the last (category) dimension: a 0-d tensor as it is (torch
    treats it as a scalar), batched ones with a trailing dimension of 1."""
    return temperature if temperature.dim() == 0 else temperature.unsqueeze(-1)


def _face(logits: torch.Tensor) -> torch.Tensor | None:
    """The possible categories (finite logits), or None when all are: a ``-inf`` logit
    restricts the distribution to the face of the simplex spanned by the others."""
    if logits.amin().item() > -math.inf:  # one reduction, no mask, in the common case
        return None
    return logits > -math.inf


def _log_exp_concrete_unnormalised(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    y: torch.Tensor,
    face: torch.Tensor | None = None,
) -> torch.Tensor:
    """The paper's log-space density (App. C.3, Eq. 26) at ``y = log x``:

    ``log Gamma(n) + (n-1) log lambda + sum_k (log alpha_k - lambda y_k)
    - n logsumexp_k(log alpha_k - lambda y_k)``, computed as
    ``log Gamma(n) + (n-1) log lambda + sum_k log_softmax(log alpha - lambda y)_k``.
    It is the Concrete density times ``prod_{k=1..n} x_k``.  Given a ``face``, the
    categories and ``n`` are those of the face; ``logits`` and ``y`` off it must be
    finite stand-ins (a product with ``-inf`` there would make the gradient NaN).
    """
    scores = logits - _per_row(temperature) * y
    if face is None:
        n = logits.size(-1)
        return math.lgamma(n) + (n - 1) * temperature.log() + _log_softmax_sum(scores)
    n = face.sum(-1).to(y.dtype)
    log_softmax = _log_softmax(scores.masked_fill(~face, -math.inf)).masked_fill(~face, 0.0)
    return torch.lgamma(n) + (n - 1) * temperature.log() + log_softmax.sum(-1)


def _on_face(
    logits: torch.Tensor, y: torch.Tensor, face: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(face, logits, y, off)``: the possible categories, the logits and ``y`` with
    finite stand-ins (0) off the face and where ``y = -inf``, and ``y == -inf``; or
    ``(None, logits, y, None)`` when every category is possible and ``y`` is finite.
    ``face`` is ``_face(logits)``."""
    if face is None and y.amin().item() > -math.inf:
        return None, logits, y, None
    possible = logits > -math.inf
    off = y == -math.inf
    return possible, logits.masked_fill(~possible, 0.0), y.masked_fill(off, 0.0), off


def _log_exp_concrete(
    logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor, face: torch.Tensor | None
) -> torch.Tensor:
    """ExpConcrete log density w.r.t. Lebesgue on the chart of all coordinates but the
    last possible one: Eq. 26 minus ``y`` there.  ``-inf`` where ``y`` is ``-inf`` on a
    possible category (the density's limit) or finite on an impossible one.  ``face``
    is ``_face(logits)``."""
    face, a, y_in, off = _on_face(logits, y, face)
    if face is None:
        return _log_exp_concrete_unnormalised(logits, temperature, y) - y[..., -1]
    last = (face * torch.arange(face.size(-1), device=face.device)).argmax(-1)
    y_last = (y_in * torch.nn.functional.one_hot(last, face.size(-1))).sum(-1)
    log_p = _log_exp_concrete_unnormalised(a, temperature, y_in, face) - y_last
    return log_p.masked_fill((off == face).any(-1), -math.inf)


def _log_concrete_interior(
    logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Concrete log density (Eq. 11) at ``y = log x`` finite on the possible categories
    (and ``-inf`` off them, as in a sample): Eq. 26 minus ``sum_k y_k`` over the face.
    A ``y`` of another distribution's sample may lie on this one's boundary (``-inf`` on
    a possible category: ``_log_concrete``'s limit) or off its face (``-inf``)."""
    face, a, y_in, off = _on_face(logits, y, _face(logits))
    if face is None:
        return _log_exp_concrete_unnormalised(logits, temperature, y) - y.sum(-1)
    if (off & face).any():
        return _log_concrete(logits, temperature, y)
    log_p = _log_exp_concrete_unnormalised(a, temperature, y_in, face) - y_in.sum(-1)
    return log_p.masked_fill((~off & ~face).any(-1), -math.inf)


def _log_concrete(logits: torch.Tensor, temperature: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Concrete log density (Eq. 11) w.r.t. Lebesgue on ``x_1, ..., x_{n-1}``, at ``y = log x``.

    On the boundary (``m >= 1`` coordinates ``x_J = 0``, i.e. ``y_J = -inf``) the value is
    the limit along ``x_J = eps -> 0``: the density behaves as ``eps^e * exp(K)`` with
    ``e = (n - m) lambda - m`` and
    ``K = log Gamma(n) + (n-1) log lambda + sum_k log alpha_k
    - (lambda + 1) sum_{k not in J} y_k - n logsumexp_{k in J} log alpha_k``,
    so the limit is ``+inf`` (``e < 0``), ``-inf`` (``e > 0``) or ``K`` (``e = 0``).
    With impossible categories (``-inf`` logits) ``n`` and the sums run over the face of
    the possible ones; a value with mass on an impossible category scores ``-inf``.
    """
    face, a, y_in, off = _on_face(logits, y, _face(logits))
    if face is None:
        return _log_exp_concrete_unnormalised(logits, temperature, y) - y.sum(-1)
    zero = off & face
    n = face.sum(-1).to(y.dtype)
    m = zero.sum(-1)
    interior = _log_exp_concrete_unnormalised(a, temperature, y_in, face) - y_in.sum(-1)
    exponent = (n - m) * temperature - m
    in_j = zero | ((m == 0).unsqueeze(-1) & face)  # rows off the boundary: any finite stand-in
    limit_at_e0 = (
        torch.lgamma(n)
        + (n - 1) * temperature.log()
        + a.sum(-1)
        - (temperature + 1) * y_in.sum(-1)
        - n * a.masked_fill(~in_j, -math.inf).logsumexp(-1)
    )
    limit = torch.where(exponent < 0, math.inf, torch.where(exponent > 0, -math.inf, limit_at_e0))
    log_p = torch.where(m > 0, limit, interior)
    return log_p.masked_fill((~off & ~face).any(-1), -math.inf)


def _log_concrete_at_value(
    logits: torch.Tensor, temperature: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Concrete log density (Eq. 11) at a value ``x`` of the closed simplex, ``log 0 = -inf``."""
    return _log_concrete(logits, temperature, SimplexExpTransform().inv(x))


class ExpConcrete(RelaxedDiscrete):
    r"""Log of a Concrete variable: ``Y = log_softmax((log alpha + G) / lambda)``.

    Support: the log-simplex ``{y : logsumexp(y) = 0}``.  ``log_prob`` is the density of
    ``(y_1, ..., y_{n-1})`` w.r.t. Lebesgue measure, the chart that
    ``biject_to(log_simplex)`` parameterises; it is normalised, unlike the paper's
    Eq. 26, from which it differs by ``-y_n``.  This is the stochastic node the paper
    recommends training with (App. C.3): a log-space sample never rounds onto the
    boundary, so its log density is finite at any temperature in float32.  A ``-inf``
    logit makes its category impossible: ``-inf`` in every sample, and the density is
    that of the face of the other categories (its chart drops the last possible one).

    :param temperature: lambda > 0, broadcast against the logits' batch shape.
    :param probs: event probabilities ``alpha / sum(alpha)`` (last dim: categories).
    :param logits: ``log alpha``, unnormalised.
    """

    arg_constraints = _ARG_CONSTRAINTS
    support = log_simplex
    has_rsample = True

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        face = self._logits_face
        logits = self.logits if face is None else self.logits.masked_fill(~face, 0.0)
        scores = (logits + gumbel(shape, logits)) / _per_row(self._given_temperature)
        if face is not None:  # exactly -inf, with a zero (not NaN) gradient
            scores = scores.masked_fill(~face, -math.inf)
        return _on_log_simplex(_log_softmax(scores))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        check_event_shape(self, value)
        if self._validate_args:
            self._validate_sample(value)
        return _log_exp_concrete(self.logits, self._given_temperature, value, self._logits_face)

    @lazy_property
    def _logits_face(self) -> torch.Tensor | None:
        """``_face`` of the logits, found once per distribution (``rsample`` and
        ``log_prob`` both need it)."""
        return _face(self.logits)

    mean = no_closed_form("mean", "E[log_softmax((log alpha + G) / lambda)] is not elementary")
    mode = no_closed_form("mode", "the maximiser of the density has no closed form")
    variance = no_closed_form("variance", "moments of log_softmax of Gumbels are not elementary")

    def entropy(self) -> torch.Tensor:
        raise no_closed_form_error(self, "entropy()", "E[log p(X)] is not elementary")


class Concrete(RelaxedTransformed):
    r"""The Concrete distribution ``X = softmax((log alpha + G) / lambda)`` (Eq. 10).

    Support: the simplex. ``log_prob`` is Eq. 11 w.r.t. Lebesgue measure on ``(x_1, ...,
    x_{n-1})`` (the chart of ``biject_to(simplex)``). A sample is a ``RelaxedSample``
    that carries its exact log-space value, so ``log_prob`` of it (by this distribution
    or another ``Concrete``: a model's prior scoring a guide's sample) is the density at
    the exact point, even where coordinates underflowed to 0. A value without it on the
    boundary gets the density's limit (``+inf`` when ``(n - m) lambda < m`` for ``m``
    zero coordinates, with a warning), never NaN. In float32 a sample rounds there at
    low temperature: make ``ExpConcrete`` the latent site of a model, and ``exp`` its
    value, where finite densities matter. A ``-inf`` logit makes its category
    impossible (exactly 0 in every sample).

    :param temperature: lambda > 0, broadcast against the logits' batch shape.
    :param probs: event probabilities ``alpha / sum(alpha)`` (last dim: categories).
    :param logits: ``log alpha``, unnormalised.
    """

    arg_constraints = _ARG_CONSTRAINTS
    support = constraints.simplex
    base_class = ExpConcrete
    transform_class = SimplexExpTransform
    log_density = staticmethod(_log_concrete_at_value)
    log_density_interior = staticmethod(_log_concrete_interior)
