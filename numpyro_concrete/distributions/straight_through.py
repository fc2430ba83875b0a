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
from . import conditional
from .binary_concrete import BinaryConcrete
from .concrete import Concrete

__all__ = ["BinaryConcreteStraightThrough", "ConcreteStraightThrough"]


class _StraightThrough:
    """Hard forward value ``round(Y)`` of the log-space sample ``Y``, relaxed gradient.

    ``rao_samples=K > 1`` (Gumbel-Rao, Paulus, Maddison & Krause 2021, Eq. 7): the backward
    pass goes through ``mean_k sigma_lam(z~_k)``, ``z~_k`` drawn given the hard value as in
    ``conditional.py``: same forward value, same expected gradient, lower
    variance.  ``K = 1`` is plain straight-through.

    ``reinmax=True`` (ReinMax, Liu, Liu, Gao, Wang, Yang & Wang 2023, Alg. 2): the backward
    pass of the hard value ``D`` is ``2 J(pi1)^T grad_D - J(pi0)^T grad_D / 2``, with
    ``pi0 = softmax(l)``, ``pi1 = (D + softmax(l / lam)) / 2`` and the softmax Jacobian
    ``J(p) = diag(p) - p p^T``: Heun's method for the gradient of ``E[f(D)]``, accurate to
    second order where straight-through is to first; it prefers ``lam >= 1``.  A binary
    variable is the categorical of the two logits ``(0, l)``.
    """

    _round: Callable[[Array], Array]
    rao_samples: int = 1
    reinmax: bool = False

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        rao_samples: int = 1,
        reinmax: bool = False,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(rao_samples, int) or rao_samples < 1:
            raise ValueError(f"rao_samples must be an int >= 1, got {rao_samples!r}.")
        if reinmax and rao_samples > 1:
            raise ValueError(
                f"reinmax=True is its own backward pass and takes no rao_samples, got "
                f"rao_samples={rao_samples!r}."
            )
        self.rao_samples, self.reinmax = rao_samples, bool(reinmax)
        super().__init__(temperature, probs=probs, logits=logits, validate_args=validate_args)

    def sample_with_intermediates(
        self, key: Array, sample_shape: tuple[int, ...] = ()
    ) -> tuple[Array, list]:
        relaxed, intermediates = super().sample_with_intermediates(key, sample_shape)
        hard = self._round(intermediates[0][0]).astype(relaxed.dtype)
        path = relaxed
        if self.reinmax:
            path = self._reinmax(hard)
        elif self.rao_samples > 1:
            path = self._rao_blackwell(jax.random.fold_in(key, 1), hard)
        return hard + (path - jax.lax.stop_gradient(path)), [relaxed, intermediates]

    def _reinmax(self, hard: Array) -> Array:
        """An array whose Jacobian in the logits is ``2 J(pi1) - J(pi0) / 2`` (its value is
        discarded): ``J(pi1)`` as the Jacobian of ``pi1 * (l - <pi1, l>)``, ``pi1`` held
        fixed, ``J(pi0)`` as softmax's own."""
        stop = jax.lax.stop_gradient
        if self.event_shape:
            logits, temperature = self.logits, self.temperature[..., None]
            pi0 = jax.nn.softmax(logits, -1)
            pi1 = stop((hard + jax.nn.softmax(logits / temperature, -1)) / 2)
            finite = jnp.where(jnp.isneginf(logits), 0.0, logits)  # an impossible category: 0
            centred = finite - jnp.sum(pi1 * finite, -1, keepdims=True)
            return 2 * pi1 * centred - pi0 / 2
        pi1 = stop((hard + jax.nn.sigmoid(self.logits / self.temperature)) / 2)
        return 2 * pi1 * (1 - pi1) * self.logits - jax.nn.sigmoid(self.logits) / 2

    def _rao_blackwell(self, key: Array, hard: Array) -> Array:
        hard = jnp.broadcast_to(hard, (self.rao_samples, *hard.shape))
        # The noise given the hard value is held fixed: the gradient of each term is
        # straight-through's with that noise (the paper's Eq. 7).
        stop = jax.lax.stop_gradient
        if self.event_shape:
            z = conditional.categorical_conditional(key, self.logits, hard)
            noise = stop(z - jax.nn.log_softmax(self.logits, -1))
            relaxed = jax.nn.softmax((self.logits + noise) / self.temperature[..., None], -1)
        else:
            noise = stop(conditional.bernoulli_conditional(key, self.logits, hard) - self.logits)
            relaxed = jax.nn.sigmoid((self.logits + noise) / self.temperature)
        return relaxed.mean(0)

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
    pytree_aux_fields = ("rao_samples", "reinmax")
    _round = staticmethod(_one_hot_argmax)


class BinaryConcreteStraightThrough(_StraightThrough, BinaryConcrete):
    r"""Straight-through Binary Concrete: forward ``1[X > 1/2]``, gradient of ``X``.

    The hard values are ``Bernoulli(sigmoid(log alpha))`` (Prop. 1b), so ``mean`` is
    ``probs`` and ``mode`` is ``1[log alpha > 0]``.  ``log_prob`` is the Binary Concrete
    density (App. B Eq. 21) of the relaxed sample.
    """

    support = constraints.boolean
    pytree_aux_fields = ("rao_samples", "reinmax")
    _round = staticmethod(_positive)
