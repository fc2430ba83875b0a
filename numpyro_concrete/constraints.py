"""The log-simplex, its bijection from R^(n-1), and its registration with NumPyro.

``ExpConcrete`` lives on the log-simplex ``{y in R^n : logsumexp(y) = 0}``, a manifold
of dimension ``n - 1``.  ``biject_to(log_simplex)`` is

    u in R^(n-1)  ->  y = log_softmax([u, 0]),   u = y[:-1] - y[-1],

whose Jacobian on the chart ``(y_1, ..., y_{n-1})`` is ``I - 1 softmax([u, 0])[:-1]^T``
with determinant ``x_n = exp(y_n)``: ``log|det J| = y_n``.

A category whose logit is ``-inf`` is impossible: its coordinate is ``-inf`` in every
sample, so the log-simplex here admits ``-inf`` coordinates (the faces of the simplex),
and ``masked_logits`` admits such logits (NumPyro's ``real_vector`` does not).  Binary
logits use NumPyro's ``real``, which is finite.

NumPyro has no one-hot constraint (torch does), so ``one_hot``, the support of
``ConcreteStraightThrough``, is defined here too.
"""

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import ParameterFreeTransform, biject_to

__all__ = ["LogSimplexTransform", "log_simplex", "masked_logits", "one_hot", "positive_finite"]


class _PositiveFinite(constraints.ParameterFreeConstraint):
    """``0 < x < inf``: a temperature (``inf`` and ``nan`` fail, unlike ``positive``)."""

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        return (x > 0) & (x < jnp.inf)

    def feasible_like(self, prototype: ArrayLike) -> Array:
        return jnp.ones_like(prototype)


positive_finite = _PositiveFinite()


class _MaskedLogits(constraints.ParameterFreeConstraint):
    """Categorical logits: each real or ``-inf`` (an impossible category), at least one
    finite; ``nan`` and ``+inf`` fail."""

    event_dim = 1

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        return ((x == x) & (x < jnp.inf)).all(-1) & (x > -jnp.inf).any(-1)

    def feasible_like(self, prototype: ArrayLike) -> Array:
        return jnp.zeros_like(prototype)


masked_logits = _MaskedLogits()


class _LogSimplex(constraints.ParameterFreeConstraint):
    """``{y in [-inf, inf)^n : logsumexp(y) = 0}``, up to a few ulps per coordinate
    (``-inf``: a coordinate on a face of the simplex; ``nan`` and ``+inf`` fail)."""

    event_dim = 1

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        tol = 8 * x.shape[-1] * jnp.finfo(x.dtype).eps
        allowed = ((x == x) & (x < jnp.inf)).all(-1)
        return allowed & (jnp.abs(jax.nn.logsumexp(x, -1)) <= tol)

    def feasible_like(self, prototype: ArrayLike) -> Array:
        return jnp.full_like(prototype, -jnp.log(jnp.shape(prototype)[-1]))


log_simplex = _LogSimplex()


class _OneHot(constraints.ParameterFreeConstraint):
    """One-hot vectors: entries in ``{0, 1}`` summing to 1."""

    is_discrete = True
    event_dim = 1

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        return ((x == 0) | (x == 1)).all(-1) & (x.sum(-1) == 1)

    def feasible_like(self, prototype: ArrayLike) -> Array:
        return jnp.zeros_like(prototype).at[..., 0].set(1)


one_hot = _OneHot()


class LogSimplexTransform(ParameterFreeTransform):
    """Bijection ``u in R^(n-1) -> log_softmax([u, 0])`` onto the log-simplex.

    ``log|det J| = y_n`` on the chart ``(y_1, ..., y_{n-1})`` (module docstring), the
    chart in which ``ExpConcrete.log_prob`` is normalised.
    """

    domain = constraints.real_vector
    codomain = log_simplex

    def __call__(self, u: ArrayLike) -> Array:
        u = jnp.asarray(u)
        return jax.nn.log_softmax(jnp.concatenate([u, jnp.zeros_like(u[..., :1])], -1), -1)

    def _inverse(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        return y[..., :-1] - y[..., -1:]

    def log_abs_det_jacobian(self, u: ArrayLike, y: ArrayLike, intermediates: None = None) -> Array:
        return jnp.asarray(y)[..., -1]

    def forward_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape[:-1] + (shape[-1] + 1,)

    def inverse_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape[:-1] + (shape[-1] - 1,)


@biject_to.register(_LogSimplex)
def _log_simplex_bijection(constraint: _LogSimplex) -> LogSimplexTransform:
    return LogSimplexTransform()
