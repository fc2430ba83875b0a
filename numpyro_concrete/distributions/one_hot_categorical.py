"""The one-hot categorical distribution, which NumPyro lacks (Pyro has it).

It is what ``ExpConcrete``/``Concrete`` relax and their zero-temperature limit
(Prop. 1c): ``relax`` turns it into ``ExpConcrete`` and ``discretize`` turns the
relaxation back into it.  NumPyro-only: Pyro's ``OneHotCategorical`` plays this role there.
"""

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import lazy_property

from ..constraints import masked_logits, one_hot
from .relaxed import validated_log_prob

__all__ = ["OneHotCategorical"]


class OneHotCategorical(Distribution):
    """``one_hot(k)`` with ``k ~ Categorical(probs)``; ``log_prob(v) = sum_k v_k log p_k``.

    A logit of ``-inf`` (a probability of 0) makes its category impossible, as in Pyro's
    ``OneHotCategorical``: it is never drawn, and scoring it gives ``-inf``.  Parameters
    are normalised at compile time when they are constants, so validation checks them
    inside ``jit`` too, as NumPyro's own classes do.

    :param probs: event probabilities (last dim: categories).
    :param logits: unnormalised log probabilities.
    """

    arg_constraints = {"probs": constraints.simplex, "logits": masked_logits}
    support = one_hot
    has_enumerate_support = True
    pytree_data_fields = ("logits",)

    def __init__(
        self,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("OneHotCategorical takes exactly one of `probs` or `logits`.")
        with jax.ensure_compile_time_eval():  # constants stay constants under jit
            if logits is None:
                self.probs = jnp.asarray(probs, dtype=jnp.result_type(float))
                logits = jnp.log(self.probs)
            logits = jnp.asarray(logits, dtype=jnp.result_type(float))
            self.logits = logits - jax.nn.logsumexp(logits, -1, keepdims=True)
        super().__init__(
            self.logits.shape[:-1], self.logits.shape[-1:], validate_args=validate_args
        )

    @lazy_property
    def probs(self) -> Array:
        return jax.nn.softmax(self.logits, -1)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        k = jax.random.categorical(key, self.logits, shape=sample_shape + self.batch_shape)
        return jax.nn.one_hot(k, self.event_shape[0], dtype=self.logits.dtype)

    @validated_log_prob
    def log_prob(self, value: ArrayLike) -> Array:
        return jnp.where(value > 0, self.logits, 0.0).sum(-1)

    def enumerate_support(self, expand: bool = True) -> Array:
        n = self.event_shape[0]
        values = jnp.eye(n, dtype=self.logits.dtype).reshape(
            (n,) + (1,) * len(self.batch_shape) + (n,)
        )
        return jnp.broadcast_to(values, (n,) + self.batch_shape + (n,)) if expand else values

    @property
    def mean(self) -> Array:
        return self.probs

    @property
    def variance(self) -> Array:
        return self.probs * (1 - self.probs)

    def entropy(self) -> Array:
        # 0 log 0 = 0, with a finite stand-in so that the gradient is not NaN
        return -(self.probs * jnp.where(self.logits > -jnp.inf, self.logits, 0.0)).sum(-1)
