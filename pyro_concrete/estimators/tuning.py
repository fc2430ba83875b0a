"""What an estimator learns to lower its variance (REBAR's ``eta`` and temperatures,
RELAX's control variate, the double control variates' ``alpha``, RODEO's network): the
quantities, and the base of the estimators that tune them."""

from collections.abc import Callable

import torch
from pyro.infer.elbo import ELBOModule
from pyro.nn import PyroModule, PyroParam
from torch.distributions import constraints
from torch.distributions.constraints import Constraint

from .elbo import DiscreteELBO

__all__ = ["TunedELBO", "TunedQuantities"]


class TunedQuantities(PyroModule):
    """What a control variate learns, as ``PyroParam`` attributes created when first read:
    a ``torch.nn.Module``, so that an optimiser of ``elbo(model, guide).parameters()`` and
    DDP see them, whose attributes are ``pyro.param`` sites of the same names, so that
    ``SVI``'s optimiser sees them too (and they live in the param store unless
    ``pyro.settings.set(module_local_params=True)``).  As a ``PyroModule``'s, they belong
    to the estimator: a new estimator starts from its initial values, while
    ``pyro.clear_param_store()`` leaves those of an existing one as they are."""

    def forward(
        self, name: str, init: torch.Tensor, constraint: Constraint = constraints.real
    ) -> torch.Tensor:
        """The quantity ``name``, created at ``init`` (or the param store's value)."""
        *path, leaf = name.split(".")
        module = self
        for part in path:  # a site name with dots: nested modules give the same full name
            if not isinstance(getattr(module, part, None), PyroModule):
                setattr(module, part, PyroModule())
            module = getattr(module, part)
        if leaf not in dict(module.named_pyro_params(recurse=False)):
            setattr(module, leaf, PyroParam(init, constraint))
        return getattr(module, leaf)


class TunedELBO(DiscreteELBO):
    """An estimator with tuned quantities, :attr:`tuned`, which ``elbo(model, guide)``
    holds too, so that a torch optimiser of its parameters (and DDP) trains them."""

    #: whether the quantities are learned (else their initial values are used)
    tune: bool

    def __init__(self, num_particles: int, vectorize_particles: bool) -> None:
        super().__init__(num_particles, vectorize_particles)
        #: the tuned quantities (empty unless tuning)
        self.tuned = TunedQuantities()

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """Pyro's ``ELBOModule`` of ``model`` and ``guide``, holding :attr:`tuned` too."""
        module = super().__call__(model, guide)
        module.tuned = self.tuned
        return module

    def _tuned(self, name: str, init: torch.Tensor) -> torch.Tensor:
        """The tuned quantity ``name``, created at ``init`` (``init`` itself when not
        tuning)."""
        return self.tuned(name, init) if self.tune else init
