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
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import gammaln
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from ..constraints import log_simplex, masked_logits, positive_finite
from .noise import gumbel
from .relaxed import (
    RelaxedDiscrete,
    RelaxedTransformed,
    no_closed_form,
    no_closed_form_error,
    validated_log_prob,
)
from .transforms import SimplexExpTransform

__all__ = ["Concrete", "ExpConcrete"]

_ARG_CONSTRAINTS = {
    "temperature": positive_finite,
    "probs": constraints.simplex,
    "logits": masked_logits,
}


def _finite_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    return _finite(*primals), *tangents


@jax.custom_jvp
def _finite(x: Array) -> Array:
    """``x`` with ``-inf`` replaced by the lowest float, its derivative taken as 1.

    The stand-in only ever meets a zero weight (a factor 0, or a softmax weight 0), so
    its derivative does not matter; taking it as 1 keeps the backward pass free of the
    selects that the derivative of ``jnp.where`` or ``jnp.maximum`` brings, at which
    XLA's CPU backend splits the fused loops of a gradient (benchmarks/throughput.py).
    """
    return jnp.maximum(x, jnp.finfo(x.dtype).min)


_finite.defjvp(_finite_jvp)


def _possible(x: Array) -> Array:
    """1.0 where ``x > -inf``, 0.0 where ``x = -inf``, without gradient: ``x - _finite(x)``
    is 0 or ``-inf``.  Arithmetic instead of a comparison, for the reason ``_finite`` gives."""
    x = jax.lax.stop_gradient(x)
    return jnp.maximum(x - _finite(x) + 1, 0.0)


def _minus_inf_at(mask: Array) -> Array:
    """``-inf`` where ``mask`` is 1.0, 0.0 where it is 0.0 (``-inf * 0`` would be NaN):
    ``-M - M`` overflows to ``-inf`` for the largest float ``M``."""
    big = jnp.finfo(mask.dtype).max * mask
    return -big - big


def _temperature_times_jvp(
    primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    temperature, v = primals
    d_temperature, d_v = tangents
    out = _temperature_times(temperature, v)
    tangent = jnp.zeros_like(out)
    if not isinstance(d_v, SymbolicZero):
        tangent = temperature[..., None] * d_v
    if not isinstance(d_temperature, SymbolicZero):  # a zero, not NaN, through -inf in v
        tangent = tangent + jnp.where(v > -jnp.inf, v, 0.0) * d_temperature[..., None]
    return out, tangent


@jax.custom_jvp
def _temperature_times(temperature: Array, v: Array) -> Array:
    """``lambda v`` over the event dimension, whose derivative in lambda is 0 (not
    ``-inf * 0``, NaN) where ``v`` is ``-inf`` (an impossible category).  Written as a
    rule of its own so that a constant temperature, the usual case, costs no mask."""
    return temperature[..., None] * v


_temperature_times.defjvp(_temperature_times_jvp, symbolic_zeros=True)


def _log_exp_concrete_parts(
    logits: Array, temperature: Array, y: Array
) -> tuple[Array, Array, Array]:
    """``(possible, log Gamma(n) + (n-1) log lambda, log_softmax(log alpha - lambda y))``:
    the parts of the paper's log-space density (App. C.3, Eq. 26) at ``y = log x``,

    ``log Gamma(n) + (n-1) log lambda + sum_k (log alpha_k - lambda y_k)
    - n logsumexp_k(log alpha_k - lambda y_k)``
    ``= log Gamma(n) + (n-1) log lambda + sum_k log_softmax(log alpha - lambda y)_k``,

    the Concrete density times ``prod_{k=1..n} x_k``.  The categories and ``n`` are those
    of the face of possible categories (finite logits), where ``possible`` is 1.0 (0.0
    off it).  Off the face the ``log_softmax`` is the lowest float, for a zero weight;
    ``lambda y`` takes it too where ``y = -inf``, so ``log alpha - lambda y`` is
    ``-inf``, not NaN, where both are ``-inf``.
    """
    possible = _possible(logits)
    n = possible.sum(-1)
    scores = logits - _finite(_temperature_times(temperature, y))
    log_softmax = _finite(jax.nn.log_softmax(scores, -1))
    return possible, gammaln(n) + (n - 1) * jnp.log(temperature), log_softmax


def _log_exp_concrete_masked(logits: Array, temperature: Array, y: Array) -> Array:
    """ExpConcrete log density w.r.t. Lebesgue on the chart of all coordinates but the
    last possible one: Eq. 26 minus ``y`` there.  ``-inf`` where ``y`` is ``-inf`` on a
    possible category (the density's limit) or finite on an impossible one.

    One formula for every case, in masks of 0.0 and 1.0 (no comparisons, for the reason
    ``_finite`` gives, and no ``lax.cond``, whose gradient keeps the residuals of both
    branches).
    """
    possible, constant, log_softmax = _log_exp_concrete_parts(logits, temperature, y)
    k = jnp.arange(y.shape[-1], dtype=y.dtype)
    last = jnp.maximum(1 - jnp.abs(k - (possible * k).max(-1, keepdims=True)), 0.0)
    off_support = jnp.abs(possible - _possible(y))
    terms = possible * log_softmax - last * _finite(y) + _minus_inf_at(off_support)
    return constant + terms.sum(-1)


def _log_exp_concrete_plain(logits: Array, temperature: Array, y: Array) -> Array:
    """Eq. 26 minus ``y_n`` where every category is possible and ``y`` is finite."""
    n = logits.shape[-1]
    log_softmax = jax.nn.log_softmax(logits - temperature[..., None] * y, -1)
    return gammaln(n) + (n - 1) * jnp.log(temperature) + log_softmax.sum(-1) - y[..., -1]


def _log_concrete_interior_masked(logits: Array, temperature: Array, y: Array) -> Array:
    """Concrete log density (Eq. 11) at ``y = log x`` finite on the possible categories
    and ``-inf`` off them, as in a sample: Eq. 26 minus ``sum_k y_k`` over the face.
    A ``y`` that is not (``-inf`` on a possible category, finite on an impossible one)
    scores ``-inf``.  One formula for every case, as ``_log_exp_concrete_masked``."""
    possible, constant, log_softmax = _log_exp_concrete_parts(logits, temperature, y)
    off_support = jnp.abs(possible - _possible(y))
    terms = possible * (log_softmax - _finite(y)) + _minus_inf_at(off_support)
    return constant + terms.sum(-1)


def _log_concrete_plain(logits: Array, temperature: Array, y: Array) -> Array:
    """Eq. 26 minus ``sum_k y_k`` where every category is possible and ``y`` is finite."""
    return _log_exp_concrete_plain(logits, temperature, y) + y[..., -1] - y.sum(-1)


def _with_plain_value(masked: Callable, plain: Callable) -> Callable:
    """``masked(logits, temperature, y)``, right for every input, whose value is computed by
    the cheaper ``plain`` when no category is impossible and ``y`` is finite.

    A ``custom_jvp``: its value is a ``lax.cond`` between the two (one branch runs), its
    derivatives are those of ``masked``, so a gradient never differentiates the ``cond``
    (which would keep the residuals of both branches).  Arguments whose tangent is a
    symbolic zero (a constant temperature) stay constants inside ``masked``.
    """

    def value(logits: Array, temperature: Array, y: Array) -> Array:
        unmasked = (logits > -jnp.inf).all() & (y > -jnp.inf).all()
        return jax.lax.cond(unmasked, plain, masked, logits, temperature, y)

    def jvp(primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> tuple[Array, Array]:
        live = [i for i, t in enumerate(tangents) if not isinstance(t, SymbolicZero)]

        def of_live(*args: Array) -> Array:
            full = list(primals)
            for i, arg in zip(live, args, strict=True):
                full[i] = arg
            return masked(*full)

        return jax.jvp(of_live, [primals[i] for i in live], [tangents[i] for i in live])

    function = jax.custom_jvp(value)
    function.defjvp(jvp, symbolic_zeros=True)
    return function


_log_exp_concrete = _with_plain_value(_log_exp_concrete_masked, _log_exp_concrete_plain)
_log_concrete_interior = _with_plain_value(_log_concrete_interior_masked, _log_concrete_plain)


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
    interior = _log_concrete_interior(logits, temperature, jnp.where(zero, 0.0, y))
    y = jnp.where(off, 0.0, y)
    a = jnp.where(face, logits, 0.0)
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
        scores = _temperature_times(
            1 / self.temperature, self.logits + gumbel(key, shape, self.logits)
        )
        y = jax.nn.log_softmax(scores, -1)  # -inf exactly on impossible categories
        # Under jit XLA's exp(0) may round below 1, leaving the largest coordinate an ulp
        # above 0; shifting the whole vector back (a constant: gradients are unchanged)
        # keeps y on the log-simplex side of 0 and exp(y) <= 1.
        return y - jax.lax.stop_gradient(jnp.maximum(y.max(-1, keepdims=True), 0.0))

    @validated_log_prob
    def log_prob(self, value: ArrayLike) -> Array:
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
