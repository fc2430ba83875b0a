"""Straight-through Concrete variables: hard forward value, relaxed gradient.

``sample`` returns the hard sample ``H`` (one-hot argmax, or ``1[Y > 0]``) as
``H + (X - stop_gradient(X))``: its value is exactly ``H`` and its gradient is that of
the relaxed sample ``X``.  ``log_prob`` scores ``X``, which travels with the value in
NumPyro's intermediates: ``sample_with_intermediates`` returns
``(H, [X, X_intermediates])`` (``X_intermediates`` holds the exact log-space sample),
inference utilities keep them in ``site["intermediates"]`` and pass them back to
``log_prob``, and ``jit`` and ``vmap`` carry them like any other pytree; nothing is
stashed on an array (Pyro issue #3127).  A value without its relaxed sample raises
``ValueError`` instead of being scored wrongly.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from ..constraints import one_hot
from .binary_concrete import BinaryConcrete
from .concrete import Concrete

__all__ = ["BinaryConcreteStraightThrough", "ConcreteStraightThrough"]


class _StraightThrough:
    """Hard forward value ``round(Y)`` of the log-space sample ``Y``, relaxed gradient."""

    _round: Callable[[Array], Array]

    def sample_with_intermediates(
        self, key: Array, sample_shape: tuple[int, ...] = ()
    ) -> tuple[Array, list]:
        relaxed, intermediates = super().sample_with_intermediates(key, sample_shape)
        hard = self._round(intermediates[0][0]).astype(relaxed.dtype)
        return hard + (relaxed - jax.lax.stop_gradient(relaxed)), [relaxed, intermediates]

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """The hard value (``TransformedDistribution.sample`` would skip the rounding)."""
        return self.sample_with_intermediates(key, sample_shape)[0]

    rsample = sample

    def _relaxed(self, value: ArrayLike, intermediates: list | None) -> tuple[Array, list]:
        if intermediates is None:
            raise ValueError(
                f"{type(self).__name__}.log_prob scores the relaxed sample that "
                "sample_with_intermediates() returns in the intermediates of its hard value, "
                "and none were given (a hard value alone does not determine it). Pass the "
                "intermediates returned with the sample, as NumPyro's inference utilities do "
                "with site['intermediates']."
            )
        relaxed, relaxed_intermediates = intermediates
        return relaxed, relaxed_intermediates

    @property
    def mean(self) -> Array:
        """The hard values are exactly the discrete distribution relaxed (Prop. 1b)."""
        return self.probs

    @property
    def mode(self) -> Array:
        return self._round(self.logits).astype(self.logits.dtype)


def _one_hot_argmax(y: Array) -> Array:
    return jax.nn.one_hot(jnp.argmax(y, -1), y.shape[-1])


def _positive(y: Array) -> Array:
    return y > 0


class ConcreteStraightThrough(_StraightThrough, Concrete):
    r"""Straight-through Concrete: forward one-hot ``argmax X``, gradient of ``X ~ Concrete``.

    The hard values are distributed as ``OneHotCategorical(probs)`` (Prop. 1b of the
    paper), so ``mean`` is ``probs`` and ``mode`` the one-hot argmax of the logits.
    ``log_prob`` is the Concrete density (Eq. 11) of the relaxed sample.
    """

    support = one_hot
    _round = staticmethod(_one_hot_argmax)


class BinaryConcreteStraightThrough(_StraightThrough, BinaryConcrete):
    r"""Straight-through Binary Concrete: forward ``1[X > 1/2]``, gradient of ``X``.

    The hard values are ``Bernoulli(sigmoid(log alpha))`` (Prop. 1b), so ``mean`` is
    ``probs`` and ``mode`` is ``1[log alpha > 0]``.  ``log_prob`` is the Binary Concrete
    density (App. B Eq. 21) of the relaxed sample.
    """

    support = constraints.boolean
    _round = staticmethod(_positive)
