"""Relaxation of a model's discrete sites into log-space Concrete sites.

``relax(model)`` turns every latent ``Bernoulli`` and ``OneHotCategorical`` site ``"z"``
into a site of the same name whose stochastic node lives in log space, as Maddison et
al. (2017, App. C.3) recommend:

=====================  ==================================  ==========================
original site          recorded site ``"z"`` (the node)    the model's code receives
=====================  ==================================  ==========================
``Bernoulli(p)``       ``LogitBinaryConcrete(lam, p)``     ``sigmoid(y)`` in (0, 1)
``OneHotCategorical``  ``ExpConcrete(lam, p)``             ``exp(y)`` on the simplex
=====================  ==================================  ==========================

The mechanism: ``RelaxMessenger`` swaps the distribution when the message is processed;
Pyro runs postprocessing from the outermost handler inwards, so an enclosing ``trace``
records the log-space value ``y`` before ``RelaxMessenger``, the innermost, maps it to
``sigmoid(y)`` / ``exp(y)`` for the model.  The densities are thus counted once, in log
space, where they are finite in float32.  Handlers applied *outside* ``relax``
(``condition``, ``replay``) therefore see and provide log-space values;
handlers applied to the model *inside* ``relax`` see the original discrete sites, and a
value they fix stays discrete (``relax(condition(model, data))`` leaves observed sites
untouched).  A *hard* value given from outside (an exact one-hot vector, which is never
a point of the log-simplex, or a Bernoulli site conditioned on values all in ``{0, 1}``)
reaches the model unchanged, so ``Predictive(relax(model), guide=discretize(guide))``
runs the model on hard values.

Pyro runs the body of ``pyro.markov`` (loop or vectorised) under the same handlers, so
time series need nothing more.

Temperatures: a constant, or a schedule ``step -> temperature`` evaluated at the
reserved keyword ``relax_step`` of each call (``RELAX_STEP``), which ``relax`` and the
relaxed autoguides read and remove; under ``JitTrace_ELBO`` pass the step as a tensor,
so that a whole schedule is traced once.
"""

from collections.abc import Callable, Iterable

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from .distributions import ExpConcrete, LogitBinaryConcrete
from .distributions.wrappers import base_of, map_base

__all__ = [
    "RELAX_STEP",
    "RelaxMessenger",
    "Relaxed",
    "base_of",
    "map_base",
    "relax",
    "select",
    "temperature_at",
]

#: The keyword that carries the step of a temperature schedule to a relaxed model and to
#: its guide (``svi.step(data, relax_step=step)``); a hand-written guide that follows a
#: schedule takes it as an argument.
RELAX_STEP = "relax_step"

Temperature = float | torch.Tensor | Callable[[int | torch.Tensor], float | torch.Tensor]


def temperature_at(temperature: Temperature, step: int | torch.Tensor) -> float | torch.Tensor:
    """The temperature at ``step``: ``temperature(step)`` for a schedule, else itself."""
    return temperature(step) if callable(temperature) else temperature


def _binary_to_model(y: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(y)


def _categorical_to_model(y: torch.Tensor) -> torch.Tensor:
    """``exp(y)``; a hard value (an exact one-hot vector) as it is."""
    one_hot = ((y == 0) | (y == 1)).all(-1, keepdim=True) & (y.sum(-1, keepdim=True) == 1)
    return torch.where(one_hot, y, y.exp())


#: discrete family -> (log-space relaxation, map from the log-space value to the model's)
_RELAXATIONS = {
    dist.Bernoulli: (LogitBinaryConcrete, _binary_to_model),
    dist.OneHotCategorical: (ExpConcrete, _categorical_to_model),
}


def _is_hard_binary(msg: dict) -> bool:
    """A Bernoulli site conditioned (from outside ``relax``) on values all in ``{0, 1}``:
    hard values, as ``Predictive`` feeds them from a discretized guide."""
    value = msg["value"]
    return (
        msg["is_observed"]
        and not torch.jit.is_tracing()
        and bool(((value == 0) | (value == 1)).all())
    )


class RelaxMessenger(Messenger):
    """Relaxes latent ``Bernoulli``/``OneHotCategorical`` sites at ``temperature`` (module doc).

    :param temperature: the prior temperature lambda (a float or a scalar tensor).
    :param sites: names of the sites to relax; ``None`` relaxes every latent
        ``Bernoulli`` and ``OneHotCategorical`` site and rejects latent ``Categorical``.
    """

    def __init__(
        self, temperature: float | torch.Tensor, sites: Iterable[str] | None = None
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.sites = None if sites is None else frozenset(sites)
        self._relaxed: dict[str, tuple[type, Callable]] = {}

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] or site_is_subsample(msg):
            return
        if msg["value"] is not None:  # fixed by a handler inside relax: a discrete value
            return
        if self.sites is not None and msg["name"] not in self.sites:
            return
        base = base_of(msg["fn"])
        if type(base) not in _RELAXATIONS:
            if self.sites is not None or isinstance(base, dist.Categorical):
                raise ValueError(_not_relaxable_message(msg["name"], base))
            return
        family, to_model = _RELAXATIONS[type(base)]
        msg["fn"] = map_base(msg["fn"], lambda b: family(self.temperature, logits=b.logits))
        self._relaxed[msg["name"]] = (family, to_model)

    def _pyro_post_sample(self, msg: dict) -> None:
        family, to_model = self._relaxed.pop(msg["name"], (None, None))
        # An enclosing plate may re-wrap the distribution; discretize replaces its family.
        if family is not None and isinstance(base_of(msg["fn"]), family):
            if not (family is LogitBinaryConcrete and _is_hard_binary(msg)):
                msg["value"] = to_model(msg["value"])


def _not_relaxable_message(name: str, base: dist.TorchDistribution) -> str:
    if isinstance(base, dist.Categorical):
        return (
            f"relax(): site {name!r} is a Categorical, whose integer values have no "
            "continuous relaxation. Write it as OneHotCategorical(probs) and read it with "
            "pyro_concrete.select(table, z), which accepts an index, a one-hot vector or "
            "a relaxed one-hot alike; or leave it discrete by listing the sites to relax "
            "in relax(..., sites=[...])."
        )
    return (
        f"relax(): site {name!r} is a {type(base).__name__}; only Bernoulli and "
        "OneHotCategorical sites can be relaxed."
    )


class Relaxed:
    """A model with its latent discrete sites relaxed (what ``relax`` returns).

    Calling it runs ``model`` under a ``RelaxMessenger`` at the temperature of the
    call's ``relax_step`` keyword (0 when absent), which the model does not see; every
    other argument is the model's.  A class rather than a closure, so that it pickles.
    """

    def __init__(
        self, model: Callable, temperature: Temperature, sites: Iterable[str] | None
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.sites = None if sites is None else frozenset(sites)

    def __call__(self, *args, **kwargs):
        temperature = temperature_at(self.temperature, kwargs.pop(RELAX_STEP, 0))
        with RelaxMessenger(temperature, self.sites):
            return self.model(*args, **kwargs)

    def __repr__(self) -> str:
        return f"relax({self.model!r}, temperature={self.temperature!r}, sites={self.sites})"


def relax(
    model: Callable, temperature: Temperature = 0.5, sites: Iterable[str] | None = None
) -> Relaxed:
    """The model with its latent discrete sites relaxed into log-space Concrete sites.

    The returned model takes the original model's arguments, all passed on unchanged,
    plus the reserved keyword ``relax_step`` (``RELAX_STEP``): the step at which a
    schedule is evaluated, e.g. ``svi.step(data, relax_step=step)`` (a tensor under
    ``JitTrace_ELBO``, so that a whole schedule is traced once).

    :param model: a Pyro model with latent ``Bernoulli``/``OneHotCategorical`` sites.
    :param temperature: the prior temperature lambda (Maddison et al. use 1/2 for
        priors), or a schedule ``step -> lambda`` (``exponential_decay``).
    :param sites: the names of the sites to relax (default: every eligible latent site).
    """
    return Relaxed(model, temperature, sites)


def select(table: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The entry of ``table`` chosen by ``z``, with the ``n`` categories on ``table``'s
    rightmost dimension and broadcasting on the left.

    ``z`` is an integer index (a ``Categorical`` value), a one-hot vector (a
    ``OneHotCategorical`` value) or a relaxed one-hot (a point of the simplex): the result
    is ``sum_k z_k table[..., k]``, exactly ``table[..., z]`` for a hard ``z``, so the same
    model code reads a discrete site, its enumeration and its relaxation.
    """
    if not torch.is_floating_point(z):
        z = torch.nn.functional.one_hot(z, table.size(-1)).to(table.dtype)
    return (z * table).sum(-1)
