"""The Concrete distribution and its log-space twin (Maddison, Mnih & Teh 2017).

``ExpConcrete`` carries the mathematics; ``Concrete`` is ``ExpConcrete`` pushed through
``exp`` (a ``SimplexExpTransform``, the exact log-space sample kept in the
intermediates), following the paper's App. C.3 advice to make the log-space variable
the stochastic node.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln
from jax.typing import ArrayLike
from numpyro.distributions import constraints

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


def _log_exp_concrete_unnormalised(logits: Array, temperature: Array, y: Array) -> Array:
    """The paper's log-space density (App. C.3, Eq. 26) at ``y = log x``:

    ``log Gamma(n) + (n-1) log lambda + sum_k (log alpha_k - lambda y_k)
    - n logsumexp_k(log alpha_k - lambda y_k)``, computed as
    ``log Gamma(n) + (n-1) log lambda + sum_k log_softmax(log alpha - lambda y)_k``.
    It is the Concrete density times ``prod_{k=1..n} x_k``.  The categories and ``n`` are
    those of the face of possible categories (finite logits).  ``y`` must be finite: off
    the face a finite stand-in leaves the score exactly ``-inf`` (the logit) with a zero,
    not NaN, gradient.
    """
    face = logits > -jnp.inf
    n = face.sum(-1).astype(y.dtype)
    log_softmax = jax.nn.log_softmax(logits - temperature[..., None] * y, -1)
    return gammaln(n) + (n - 1) * jnp.log(temperature) + jnp.where(face, log_softmax, 0.0).sum(-1)


def _unmasked_or(masked: Array, general: Callable, plain: Callable, *args: Array) -> Array:
    """``general(*args)`` where ``masked`` (some category impossible, or a coordinate on the
    boundary), else the cheaper ``plain(*args)``, which computes the same without the
    stand-ins: ``lax.cond`` runs one branch (under ``vmap`` it computes both and selects)."""
    return jax.lax.cond(jnp.any(masked), general, plain, *args)


def _log_exp_concrete_plain(logits: Array, temperature: Array, y: Array) -> Array:
    """Eq. 26 minus ``y_n`` where every category is possible and ``y`` is finite."""
    n = logits.shape[-1]
    log_softmax = jax.nn.log_softmax(logits - temperature[..., None] * y, -1)
    return gammaln(n) + (n - 1) * jnp.log(temperature) + log_softmax.sum(-1) - y[..., -1]


def _log_exp_concrete_on_face(logits: Array, temperature: Array, y: Array) -> Array:
    """ExpConcrete log density w.r.t. Lebesgue on the chart of all coordinates but the
    last possible one: Eq. 26 minus ``y`` there.  ``-inf`` where ``y`` is ``-inf`` on a
    possible category (the density's limit) or finite on an impossible one."""
    face = logits > -jnp.inf
    off = y == -jnp.inf
    y = jnp.where(off, 0.0, y)
    last = jnp.argmax(face * jnp.arange(face.shape[-1]), -1)
    y_last = (y * jax.nn.one_hot(last, face.shape[-1], dtype=y.dtype)).sum(-1)
    log_p = _log_exp_concrete_unnormalised(logits, temperature, y) - y_last
    return jnp.where((off == face).any(-1), -jnp.inf, log_p)


def _log_exp_concrete(logits: Array, temperature: Array, y: Array) -> Array:
    """ExpConcrete log density (``_log_exp_concrete_on_face``, its plain form when no
    category is impossible and ``y`` is finite)."""
    masked = (logits == -jnp.inf).any() | (y == -jnp.inf).any()
    return _unmasked_or(
        masked, _log_exp_concrete_on_face, _log_exp_concrete_plain, logits, temperature, y
    )


def _log_concrete_on_face(logits: Array, temperature: Array, y: Array) -> Array:
    """Eq. 26 minus ``sum_k y_k`` over the face of possible categories."""
    y = jnp.where(logits > -jnp.inf, y, 0.0)
    return _log_exp_concrete_unnormalised(logits, temperature, y) - y.sum(-1)


def _log_concrete_plain(logits: Array, temperature: Array, y: Array) -> Array:
    """Eq. 26 minus ``sum_k y_k`` where every category is possible."""
    return _log_exp_concrete_plain(logits, temperature, y) + y[..., -1] - y.sum(-1)


def _log_concrete_interior(logits: Array, temperature: Array, y: Array) -> Array:
    """Concrete log density (Eq. 11) at ``y = log x`` finite on the possible categories
    (and ``-inf`` off them, as in a sample): Eq. 26 minus ``sum_k y_k`` over the face."""
    masked = (logits == -jnp.inf).any()
    return _unmasked_or(masked, _log_concrete_on_face, _log_concrete_plain, logits, temperature, y)


def _log_concrete(logits: Array, temperature: Array, y: Array) -> Array:
    """Concrete log density (Eq. 11) w.r.t. Lebesgue on ``x_1, ..., x_{n-1}``, at ``y = log x``.

    On the boundary (``m >= 1`` coordinates ``x_J = 0``, i.e. ``y_J = -inf``) the value is
    the limit along ``x_J = eps -> 0``: the density behaves as ``eps^e * exp(K)`` with
    ``e = (n - m) lambda - m`` and
    ``K = log Gamma(n) + (n-1) log lambda + sum_k log alpha_k
    - (lambda + 1) sum_{k not in J} y_k - n logsumexp_{k in J} log alpha_k``,
    so the limit is ``+inf`` (``e < 0``), ``-inf`` (``e > 0``) or ``K`` (``e = 0``).
    With impossible categories (``-inf`` logits) ``n`` and the sums run over the face of
    the possible ones; a value with mass on an impossible category scores ``-inf``.
    Both branches are computed on finite stand-ins, so neither value nor gradient is NaN.
    """
    face = logits > -jnp.inf
    off = y == -jnp.inf
    zero = off & face
    y = jnp.where(off, 0.0, y)
    a = jnp.where(face, logits, 0.0)
    interior = _log_concrete_interior(logits, temperature, y)
    n = face.sum(-1).astype(y.dtype)
    m = zero.sum(-1)
    exponent = (n - m) * temperature - m
    in_j = zero | ((m == 0)[..., None] & face)  # rows off the boundary: any finite stand-in
    limit_at_e0 = (
        gammaln(n)
        + (n - 1) * jnp.log(temperature)
        + a.sum(-1)
        - (temperature + 1) * y.sum(-1)
        - n * jax.nn.logsumexp(jnp.where(in_j, a, -jnp.inf), -1)
    )
    limit = jnp.where(exponent < 0, jnp.inf, jnp.where(exponent > 0, -jnp.inf, limit_at_e0))
    log_p = jnp.where(m > 0, limit, interior)
    return jnp.where((~off & ~face).any(-1), -jnp.inf, log_p)


def _log_concrete_at_value(logits: Array, temperature: Array, x: Array) -> Array:
    """Concrete log density (Eq. 11) at a value ``x`` of the closed simplex, ``log 0 = -inf``."""
    return _log_concrete(logits, temperature, SimplexExpTransform().inv(x))


def _scores(logits: Array, temperature: Array, gumbel: Array) -> Array:
    """``(log alpha + G) / lambda``, the scores a Concrete sample is the softmax of."""
    return (logits + gumbel) / temperature[..., None]


def _scores_on_face(logits: Array, temperature: Array, gumbel: Array) -> Array:
    """The scores with impossible categories exactly ``-inf``, with a zero (not NaN)
    gradient: ``-inf / lambda`` would give ``0 * inf`` in the temperature's gradient."""
    face = logits > -jnp.inf
    return jnp.where(face, _scores(jnp.where(face, logits, 0.0), temperature, gumbel), -jnp.inf)


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

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self.shape(sample_shape)
        g = gumbel(key, shape, self.logits)
        masked = (self.logits == -jnp.inf).any()
        scores = _unmasked_or(masked, _scores_on_face, _scores, self.logits, self.temperature, g)
        y = jax.nn.log_softmax(scores, -1)
        # Under jit XLA's exp(0) may round below 1, leaving the largest coordinate an ulp
        # above 0; shifting the whole vector back (a constant: gradients are unchanged)
        # keeps y on the log-simplex side of 0 and exp(y) <= 1.
        return y - jax.lax.stop_gradient(jnp.maximum(y.max(-1, keepdims=True), 0.0))

    def log_prob(self, value: ArrayLike) -> Array:
        value = check_event_shape(self, value)
        if self._validate_args:
            self._validate_sample(value)
        return _log_exp_concrete(self.logits, self.temperature, value)

    mean = no_closed_form("mean", "E[log_softmax((log alpha + G) / lambda)] is not elementary")
    mode = no_closed_form("mode", "the maximiser of the density has no closed form")
    variance = no_closed_form("variance", "moments of log_softmax of Gumbels are not elementary")

    def entropy(self) -> Array:
        raise no_closed_form_error(self, "entropy()", "E[log p(X)] is not elementary")


class Concrete(RelaxedTransformed):
    r"""The Concrete distribution ``X = softmax((log alpha + G) / lambda)`` (Eq. 10).

    Support: the simplex. ``log_prob`` is Eq. 11 w.r.t. Lebesgue measure on ``(x_1, ...,
    x_{n-1})`` (the chart of ``biject_to(simplex)``). A sample keeps its exact log-space
    value in its intermediates, so ``log_prob(x, intermediates)`` is the density at the
    exact point, even where coordinates underflowed to 0. A value without it on the
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
