"""The log-simplex, its bijection from R^(n-1), and its registration with torch.

``ExpConcrete`` lives on the log-simplex ``{y in R^n : logsumexp(y) = 0}``, a manifold
of dimension ``n - 1``.  ``biject_to(log_simplex)`` is

    u in R^(n-1)  ->  y = log_softmax([u, 0]),   u = y[:-1] - y[-1],

whose Jacobian on the chart ``(y_1, ..., y_{n-1})`` is ``I - 1 softmax([u, 0])[:-1]^T``
with determinant ``x_n = exp(y_n)``: ``log|det J| = y_n``.

A category whose logit is ``-inf`` is impossible: its coordinate is ``-inf`` in every
sample, so the log-simplex here admits ``-inf`` coordinates (the faces of the simplex).
``masked_logits`` admits such logits and ``finite_real`` the binary ones (torch's
``real`` lets ``+/-inf`` through).
"""

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

__all__ = [
    "LogSimplexTransform",
    "finite_real",
    "log_simplex",
    "masked_logits",
    "positive_finite",
]


class _PositiveFinite(constraints.Constraint):
    """``0 < x < inf``: a temperature (``inf`` and ``nan`` fail, unlike ``positive``)."""

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (value > 0) & (value < float("inf"))


positive_finite = _PositiveFinite()


class _FiniteReal(constraints.Constraint):
    """``-inf < x < inf``: a binary logit (``+/-inf`` would put all mass on one end)."""

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return torch.isfinite(value)


finite_real = _FiniteReal()


class _MaskedLogits(constraints.Constraint):
    """Categorical logits: each real or ``-inf`` (an impossible category), at least one
    finite; ``nan`` and ``+inf`` fail."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        allowed = ((value == value) & (value < float("inf"))).all(-1)
        return allowed & (value > -float("inf")).any(-1)


masked_logits = _MaskedLogits()


class _LogSimplex(constraints.Constraint):
    """``{y in [-inf, inf)^n : logsumexp(y) = 0}``, up to a few ulps per coordinate
    (``-inf``: a coordinate on a face of the simplex; ``nan`` and ``+inf`` fail)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = 8 * value.size(-1) * torch.finfo(value.dtype).eps
        allowed = ((value == value) & (value < float("inf"))).all(-1)
        return allowed & (value.logsumexp(-1).abs() <= tol)


log_simplex = _LogSimplex()


class LogSimplexTransform(Transform):
    """Bijection ``u in R^(n-1) -> log_softmax([u, 0])`` onto the log-simplex.

    ``log|det J| = y_n`` on the chart ``(y_1, ..., y_{n-1})`` (module docstring), the
    chart in which ``ExpConcrete.log_prob`` is normalised.
    """

    domain = constraints.real_vector
    codomain = log_simplex
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogSimplexTransform)

    def _call(self, u: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(u, (0, 1)).log_softmax(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., :-1] - y[..., -1:]

    def log_abs_det_jacobian(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y[..., -1]

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return shape[:-1] + (shape[-1] + 1,)

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return shape[:-1] + (shape[-1] - 1,)


@torch.distributions.biject_to.register(_LogSimplex)
@torch.distributions.transform_to.register(_LogSimplex)
def _log_simplex_bijection(constraint: _LogSimplex) -> LogSimplexTransform:
    return LogSimplexTransform()
