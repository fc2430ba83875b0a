"""Straight-through Concrete variables: hard forward value, relaxed gradient.

``rsample`` returns the hard sample ``H`` (one-hot argmax, or ``1[Y > 0]``) as
``H + (X - stop_gradient(X))``: its value is exactly ``H`` and its gradient is that of
the relaxed sample ``X``.  ``log_prob`` scores ``X``, which travels with the value as a
``HardSample`` tensor: unlike an attribute stashed on a plain tensor (Pyro's classes,
Pyro issue #3127), it survives ``clone``, ``detach``, ``expand``, ``to`` and pickling.
A value without its relaxed sample raises ``ValueError`` instead of being scored wrongly.
"""

from collections.abc import Callable

import torch
from torch.distributions import constraints

from . import conditional
from .binary_concrete import BinaryConcrete
from .concrete import Concrete
from .relaxed import Carrier

__all__ = ["BinaryConcreteStraightThrough", "ConcreteStraightThrough", "HardSample"]


class HardSample(Carrier):
    """A hard sample that carries the relaxed sample ``relaxed`` it was rounded from (a
    :class:`RelaxedSample`, itself carrying its exact log-space value)."""

    _carried = ("relaxed",)
    relaxed: torch.Tensor


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

    _round: Callable[[torch.Tensor], torch.Tensor]

    def __init__(
        self,
        temperature: float | torch.Tensor,
        probs: float | torch.Tensor | None = None,
        logits: float | torch.Tensor | None = None,
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

    def expand(self, batch_shape: torch.Size, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.rao_samples, new.reinmax = self.rao_samples, self.reinmax
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> HardSample:
        relaxed = super().rsample(sample_shape)
        hard = self._round(relaxed.log_space).to(relaxed.dtype)
        if self.reinmax:
            path = self._reinmax(hard)
        else:
            path = relaxed if self.rao_samples == 1 else self._rao_blackwell(hard)
        return HardSample.wrap(hard + (path - path.detach()), relaxed)

    def _reinmax(self, hard: torch.Tensor) -> torch.Tensor:
        """A tensor whose Jacobian in the logits is ``2 J(pi1) - J(pi0) / 2`` (its value is
        discarded): ``J(pi1)`` as the Jacobian of ``pi1 * (l - <pi1, l>)``, ``pi1`` held
        fixed, ``J(pi0)`` as softmax's own."""
        if self.event_shape:
            logits, temperature = self.logits, self.temperature.unsqueeze(-1)
            pi0 = logits.softmax(-1)
            pi1 = ((hard + (logits / temperature).softmax(-1)) / 2).detach()
            finite = logits.masked_fill(logits.isneginf(), 0.0)  # an impossible category: 0
            centred = finite - (pi1 * finite).sum(-1, keepdim=True)
            return 2 * pi1 * centred - pi0 / 2
        pi1 = ((hard + torch.sigmoid(self.logits / self.temperature)) / 2).detach()
        return 2 * pi1 * (1 - pi1) * self.logits - torch.sigmoid(self.logits) / 2

    def _rao_blackwell(self, hard: torch.Tensor) -> torch.Tensor:
        hard = hard.expand((self.rao_samples, *hard.shape))
        # The noise given the hard value is held fixed: the gradient of each term is
        # straight-through's with that noise (the paper's Eq. 7).
        if self.event_shape:
            z = conditional.categorical_conditional(self.logits, hard)
            noise = (z - self.logits.log_softmax(-1)).detach()
            relaxed = ((self.logits + noise) / self.temperature.unsqueeze(-1)).softmax(-1)
        else:
            noise = (conditional.bernoulli_conditional(self.logits, hard) - self.logits).detach()
            relaxed = torch.sigmoid((self.logits + noise) / self.temperature)
        return relaxed.mean(0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> HardSample:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _relaxed(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, HardSample):
            raise ValueError(
                f"{type(self).__name__}.log_prob scores the relaxed sample that rsample() "
                "attaches to its hard value, and `value` carries none (it is a plain tensor). "
                "Pass the tensor returned by rsample(), or a clone/detach/expand of it."
            )
        return value.relaxed

    @property
    def mean(self) -> torch.Tensor:
        """The hard values are exactly the discrete distribution relaxed (Prop. 1b)."""
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return self._round(self.logits).to(self.logits.dtype)


def _one_hot_argmax(y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y.argmax(-1), y.size(-1))


def _positive(y: torch.Tensor) -> torch.Tensor:
    return y > 0


class ConcreteStraightThrough(_StraightThrough, Concrete):
    r"""Straight-through Concrete: forward one-hot ``argmax X``, gradient of ``X ~ Concrete``.

    The hard values are distributed as ``OneHotCategorical(probs)`` (Prop. 1b of the
    paper), so ``mean`` is ``probs`` and ``mode`` the one-hot argmax of the logits.
    ``log_prob`` is the Concrete density (Eq. 11) of the relaxed sample.
    """

    support = constraints.one_hot
    _round = staticmethod(_one_hot_argmax)


class BinaryConcreteStraightThrough(_StraightThrough, BinaryConcrete):
    r"""Straight-through Binary Concrete: forward ``1[X > 1/2]``, gradient of ``X``.

    The hard values are ``Bernoulli(sigmoid(log alpha))`` (Prop. 1b), so ``mean`` is
    ``probs`` and ``mode`` is ``1[log alpha > 0]``.  ``log_prob`` is the Binary Concrete
    density (App. B Eq. 21) of the relaxed sample.
    """

    support = constraints.boolean
    _round = staticmethod(_positive)
