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

NumPyro has no one-hot categorical; ``numpyro_concrete.OneHotCategorical`` is it.

The mechanism: ``RelaxMessenger`` swaps the distribution when the message is processed;
NumPyro runs postprocessing from the outermost handler inwards, so an enclosing ``trace``
records the log-space value ``y`` before ``RelaxMessenger``, the innermost, maps it to
``sigmoid(y)`` / ``exp(y)`` for the model.  The densities are thus counted once, in log
space, where they are finite in float32.  Handlers applied *outside* ``relax``
(``condition``, ``replay``, ``substitute``) therefore see and provide log-space values;
handlers applied to the model *inside* ``relax`` see the original discrete sites, and a
value they fix stays discrete (``relax(condition(model, data))`` leaves observed sites
untouched).  A *hard* value given from outside (an integer array, or an exact one-hot
vector, which is never a point of the log-simplex) reaches the model unchanged, so
``Predictive(relax(model), guide=discretize(guide))`` runs the model on hard values.

``numpyro.contrib.control_flow.scan`` and ``cond`` run their bodies under ``block``:
``RelaxMessenger`` relaxes the bodies themselves (``_relax_control_flow_bodies``).

Temperatures: a constant, or a schedule ``step -> temperature`` evaluated at the
reserved keyword ``relax_step`` of each call (``RELAX_STEP``), which ``relax`` and the
relaxed autoguides read and remove; the step may be a traced integer under ``jit``.
"""

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro.primitives import Messenger

from .distributions import ExpConcrete, LogitBinaryConcrete, OneHotCategorical
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
#: its guide (``svi.update(state, data, relax_step=step)``); a hand-written guide that
#: follows a schedule takes it as an argument.
RELAX_STEP = "relax_step"

Temperature = ArrayLike | Callable[[ArrayLike], ArrayLike]


def temperature_at(temperature: Temperature, step: ArrayLike) -> ArrayLike:
    """The temperature at ``step``: ``temperature(step)`` for a schedule, else itself."""
    return temperature(step) if callable(temperature) else temperature


def _is_hard(value: Array) -> bool:
    return not jnp.issubdtype(jnp.result_type(value), jnp.floating)


def _binary_to_model(y: Array) -> Array:
    """``sigmoid(y)``; a hard (integer) value as it is."""
    return jnp.asarray(y, jnp.result_type(float)) if _is_hard(y) else jax.nn.sigmoid(y)


def _categorical_to_model(y: Array) -> Array:
    """``exp(y)``; a hard value (integer, or an exact one-hot vector) as it is."""
    if _is_hard(y):
        return jnp.asarray(y, jnp.result_type(float))
    one_hot = ((y == 0) | (y == 1)).all(-1, keepdims=True) & (y.sum(-1, keepdims=True) == 1)
    return jnp.where(one_hot, y, jnp.exp(y))


#: discrete family -> (log-space relaxation, map from the log-space value to the model's)
_RELAXATIONS = {
    dist.BernoulliProbs: (LogitBinaryConcrete, _binary_to_model),
    dist.BernoulliLogits: (LogitBinaryConcrete, _binary_to_model),
    OneHotCategorical: (ExpConcrete, _categorical_to_model),
}


class RelaxMessenger(Messenger):
    """Relaxes latent ``Bernoulli``/``OneHotCategorical`` sites at ``temperature`` (module doc).

    :param fn: the model (optional, as for every NumPyro handler).
    :param temperature: the prior temperature lambda (a float or a scalar array, which
        may be traced under ``jit``).
    :param sites: names of the sites to relax; ``None`` relaxes every latent
        ``Bernoulli`` and ``OneHotCategorical`` site and rejects latent ``Categorical``.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        temperature: ArrayLike = 0.5,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(fn)
        self.temperature = temperature
        self.sites = None if sites is None else frozenset(sites)
        self._relaxed: dict[str, tuple[type, Callable]] = {}

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "control_flow":
            _relax_control_flow_bodies(msg, self.temperature, self.sites)
            return
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        if msg["value"] is not None:  # fixed by a handler inside relax: a discrete value
            return
        if self.sites is not None and msg["name"] not in self.sites:
            return
        base = base_of(msg["fn"])
        if type(base) not in _RELAXATIONS:
            if self.sites is not None or isinstance(
                base, dist.CategoricalProbs | dist.CategoricalLogits
            ):
                raise ValueError(_not_relaxable_message(msg["name"], base))
            return
        family, to_model = _RELAXATIONS[type(base)]
        msg["fn"] = map_base(msg["fn"], lambda b: family(self.temperature, logits=b.logits))
        self._relaxed[msg["name"]] = (family, to_model)

    def postprocess_message(self, msg: dict) -> None:
        if msg["type"] != "sample":
            return
        family, to_model = self._relaxed.pop(msg["name"], (None, None))
        # An enclosing plate may re-wrap the distribution; discretize replaces its family.
        if family is not None and isinstance(base_of(msg["fn"]), family):
            msg["value"] = to_model(msg["value"])


def _relax_control_flow_bodies(msg: dict, temperature: ArrayLike, sites) -> None:
    """Relax the bodies of ``scan`` and ``cond``.  They run under ``block`` and replay the
    recorded sites to the enclosing handlers only afterwards, with their values fixed;
    NumPyro has no public hook into a body (``handlers.reparam`` is not applied there
    either), so this wraps the body functions that the ``control_flow`` message carries
    among its arguments: ``scan``'s first, ``cond``'s second and third."""
    from numpyro.contrib.control_flow.cond import cond_wrapper
    from numpyro.contrib.control_flow.scan import scan_wrapper

    bodies = {scan_wrapper: (0,), cond_wrapper: (1, 2)}.get(msg["fn"], ())
    msg["args"] = tuple(
        RelaxMessenger(arg, temperature, sites) if i in bodies else arg
        for i, arg in enumerate(msg["args"])
    )


def _not_relaxable_message(name: str, base: dist.Distribution) -> str:
    if isinstance(base, dist.CategoricalProbs | dist.CategoricalLogits):
        return (
            f"relax(): site {name!r} is a Categorical, whose integer values have no "
            "continuous relaxation. Write it as numpyro_concrete.OneHotCategorical(probs) "
            "and read it with numpyro_concrete.select(table, z), which accepts an index, a "
            "one-hot vector or a relaxed one-hot alike; or leave it discrete by listing the "
            "sites to relax in relax(..., sites=[...])."
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
        return RelaxMessenger(self.model, temperature, self.sites)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"relax({self.model!r}, temperature={self.temperature!r}, sites={self.sites})"


def relax(
    model: Callable, temperature: Temperature = 0.5, sites: Iterable[str] | None = None
) -> Relaxed:
    """The model with its latent discrete sites relaxed into log-space Concrete sites.

    The returned model takes the original model's arguments, all passed on unchanged,
    plus the reserved keyword ``relax_step`` (``RELAX_STEP``): the step at which a
    schedule is evaluated, e.g. ``svi.update(state, data, relax_step=step)``, traced
    under ``jit`` so that a whole schedule compiles once.

    :param model: a NumPyro model with latent ``Bernoulli``/``OneHotCategorical`` sites.
    :param temperature: the prior temperature lambda (Maddison et al. use 1/2 for
        priors), or a schedule ``step -> lambda`` (``exponential_decay``).
    :param sites: the names of the sites to relax (default: every eligible latent site).
    """
    return Relaxed(model, temperature, sites)


def select(table: ArrayLike, z: ArrayLike) -> Array:
    """The entry of ``table`` chosen by ``z``, with the ``n`` categories on ``table``'s
    rightmost dimension and broadcasting on the left.

    ``z`` is an integer index (a ``Categorical`` value), a one-hot vector (a
    ``OneHotCategorical`` value) or a relaxed one-hot (a point of the simplex): the result
    is ``sum_k z_k table[..., k]``, exactly ``table[..., z]`` for a hard ``z``, so the same
    model code reads a discrete site, its enumeration and its relaxation.
    """
    table, z = jnp.asarray(table), jnp.asarray(z)
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = jax.nn.one_hot(z, table.shape[-1], dtype=table.dtype)
    return (z * table).sum(-1)
