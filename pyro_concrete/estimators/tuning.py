"""What an estimator learns to lower its variance (REBAR's ``eta`` and temperatures,
RELAX's control variate, the double control variates' ``alpha``, RODEO's network): the
base of the estimators that tune them, held by the estimator's ``tuned`` module."""

import torch

from .elbo import DiscreteELBO

__all__ = ["TunedELBO"]


class TunedELBO(DiscreteELBO):
    """An estimator with tuned quantities, held by :attr:`tuned`, which
    ``elbo(model, guide)`` holds too, so that a torch optimiser of its parameters (and
    DDP) trains them (NumPyro's estimators declare them in the guide instead)."""

    #: whether the quantities are learned (else their initial values are used)
    tune: bool

    def _tuned(self, name: str, init: torch.Tensor) -> torch.Tensor:
        """The tuned quantity ``name``, created at ``init`` (``init`` itself when not
        tuning)."""
        return self.tuned(name, init) if self.tune else init
