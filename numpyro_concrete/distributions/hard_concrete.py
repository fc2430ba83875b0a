"""The Hard Concrete gate (Louizos, Welling & Kingma 2018, Sec. 4).

A Binary Concrete stretched to ``(low, high)``, ``low < 0 < 1 < high``, then clipped
to ``[0, 1]``: the clipped mass becomes atoms at exactly 0 and 1, so the gate can switch
a unit off while staying reparameterisable.
"""

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.nn import log_sigmoid
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from ..constraints import positive_finite
from .binary_concrete import log_logistic
from .noise import logistic
from .relaxed import RelaxedDiscrete, no_closed_form, no_closed_form_error, validated_log_prob

__all__ = ["HardConcrete"]


class HardConcrete(RelaxedDiscrete):
    r"""``Z = clip(low + (high - low) S, 0, 1)`` with ``S ~ BinaryConcrete(lambda, alpha)``.

    ``log_prob`` is w.r.t. Lebesgue measure on ``(0, 1)`` plus unit point masses at 0 and
    1: with the Binary Concrete CDF
    ``F(t) = sigmoid(lambda logit(t) - log alpha)``,

    - ``P(Z = 0) = sigmoid(lambda log(-low / high) - log alpha)``,
    - ``P(Z = 1) = sigmoid(log alpha - lambda log((1 - low) / (high - 1)))``,
    - on ``(0, 1)``: ``p_BC((z - low) / (high - low)) / (high - low)``.

    :param temperature: lambda > 0 (Louizos et al. use 2/3).
    :param probs: ``alpha / (1 + alpha)`` of the underlying Binary Concrete.
    :param logits: ``log alpha``.
    :param low: stretch lower end, < 0 (default -0.1).
    :param high: stretch upper end, > 1 (default 1.1).
    """

    _categorical = False
    arg_constraints = {
        "temperature": positive_finite,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = constraints.unit_interval
    pytree_aux_fields = ("low", "high")

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        low: float = -0.1,
        high: float = 1.1,
        *,
        validate_args: bool | None = None,
    ) -> None:
        if not low < 0:
            raise ValueError(f"HardConcrete needs `low` < 0 for an atom at 0, got low={low}.")
        if not high > 1:
            raise ValueError(f"HardConcrete needs `high` > 1 for an atom at 1, got high={high}.")
        self.low = float(low)
        self.high = float(high)
        super().__init__(temperature, probs=probs, logits=logits, validate_args=validate_args)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self.shape(sample_shape)
        s = jax.nn.sigmoid((self.logits + logistic(key, shape, self.logits)) / self.temperature)
        return jnp.clip(self.low + (self.high - self.low) * s, 0.0, 1.0)

    @property
    def log_prob_zero(self) -> Array:
        """``log P(Z = 0) = log sigmoid(lambda log(-low / high) - log alpha)``."""
        return log_sigmoid(self.temperature * math.log(-self.low / self.high) - self.logits)

    @property
    def log_prob_one(self) -> Array:
        """``log P(Z = 1) = log sigmoid(log alpha - lambda log((1 - low) / (high - 1)))``."""
        log_ratio = math.log((1 - self.low) / (self.high - 1))
        return log_sigmoid(self.logits - self.temperature * log_ratio)

    @property
    def prob_nonzero(self) -> Array:
        """The expected L0 norm of the gate, ``P(Z != 0)`` (Louizos et al. Eq. 12)."""
        return jax.nn.sigmoid(self.logits - self.temperature * math.log(-self.low / self.high))

    @validated_log_prob
    def log_prob(self, value: ArrayLike) -> Array:
        inside = (value > 0) & (value < 1)
        z = jnp.where(inside, value, 0.5)
        log_below, log_above = jnp.log(z - self.low), jnp.log(self.high - z)
        density = (
            log_logistic(self.logits, self.temperature, log_below - log_above)
            - log_below
            - log_above
            + math.log(self.high - self.low)
        )
        return jnp.where(
            inside, density, jnp.where(value <= 0, self.log_prob_zero, self.log_prob_one)
        )

    def test_time_gate(self) -> Array:
        """The deterministic test-time gate ``clip(sigmoid(log alpha)(high - low) + low, 0, 1)``."""
        return jnp.clip(jax.nn.sigmoid(self.logits) * (self.high - self.low) + self.low, 0.0, 1.0)

    mean = no_closed_form("mean", "E[clip(stretched sigmoid(Logistic))] is not elementary")
    mode = no_closed_form("mode", "a mixed measure (atoms and a density) has no single mode")
    variance = no_closed_form(
        "variance", "moments of a clipped sigmoid(Logistic) are not elementary"
    )

    def entropy(self) -> Array:
        raise no_closed_form_error(self, "entropy()", "the measure mixes atoms and a density")
