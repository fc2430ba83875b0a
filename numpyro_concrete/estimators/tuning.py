"""What an estimator learns to lower its variance (REBAR's ``eta`` and temperatures,
RELAX's control variate, the double control variates' ``alpha``, RODEO's network): the
base of the estimators that tune them, which declares them as ``numpyro.param`` sites of
the guide it trains."""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from jax import Array
from numpyro.handlers import trace

from .elbo import DiscreteELBO
from .traces import discrete_sites

__all__ = ["TunedELBO"]


@dataclass(frozen=True)
class _Declared:
    """What a guide of :meth:`TunedELBO.tunable` declared: the estimator class, the names
    of its tuned quantities and of the guide's own parameters."""

    estimator: type
    tuned: set[str]
    guide: set[str]


class TunedELBO(DiscreteELBO):
    """An estimator with tuned quantities, declared by the guide that :meth:`tunable`
    returns (Pyro's estimators hold them in a module instead)."""

    #: whether the quantities are learned (else their initial values are used)
    tune: bool

    def _declare(self, sites: dict[str, tuple[int, ...]]) -> None:
        """Declare the tuned quantities of the guide's discrete ``sites``."""
        raise NotImplementedError

    def tunable(self, guide: Callable) -> Callable:
        """``guide`` that also declares the tuned quantities as ``numpyro.param`` sites, so
        that ``SVI.init`` puts them in the parameters and ``svi.update`` moves them:
        ``SVI(model, loss.tunable(guide), optim, loss)``.  The names of what it declares and
        of the guide's own parameters belong to the returned guide (its ``declared``), which
        a loss reads when it tunes: any estimator of the same kind trains with it."""

        @functools.wraps(guide)
        def tuned_guide(*args, **kwargs):
            with trace() as guide_trace:
                out = guide(*args, **kwargs)
            sites = discrete_sites(guide_trace)
            if sites:  # not in a relaxed pass, where the sites are scored by LogMass
                with trace() as declared:
                    self._declare(sites)
                tuned_guide.declared = _Declared(
                    type(self),
                    set(declared),
                    {k for k, s in guide_trace.items() if s["type"] == "param"},
                )
            return out

        tuned_guide.declared = None
        return tuned_guide

    def _tuned(self, params: dict, name: str, init: float) -> Array | float:
        """The tuned quantity ``name`` among the loss's ``params`` (``init`` when not
        tuning)."""
        if not self.tune:
            return init
        if name not in params:
            raise ValueError(
                f"{type(self).__name__}(tune=True) learns {name!r} as a numpyro.param site, "
                "and SVI creates parameters only from the model and the guide: build the "
                "SVI with guide=loss.tunable(guide), or pass tune=False."
            )
        return params[name]
