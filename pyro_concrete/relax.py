"""Relaxation of a model's discrete sites into log-space Concrete sites (design.md section 4).

``relax(model)`` turns every latent ``Bernoulli`` and ``OneHotCategorical`` site ``"z"``
into a site of the same name whose stochastic node lives in log space, as the paper
recommends (App. C.3):

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
untouched).
"""

import functools
from collections.abc import Callable, Iterable

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger

from .distributions import ExpConcrete, LogitBinaryConcrete

__all__ = ["RelaxMessenger", "base_of", "map_base", "relax", "select"]


def map_base(
    fn: dist.TorchDistribution, f: Callable[[dist.TorchDistribution], dist.TorchDistribution]
) -> dist.TorchDistribution:
    """Apply ``f`` to the innermost distribution of ``fn``, keeping the ``Independent``,
    ``ExpandedDistribution`` and ``MaskedDistribution`` wrappers around it."""
    if isinstance(fn, torch.distributions.Independent):
        return map_base(fn.base_dist, f).to_event(fn.reinterpreted_batch_ndims)
    if isinstance(fn, dist.ExpandedDistribution):
        return map_base(fn.base_dist, f).expand(fn.batch_shape)
    if isinstance(fn, dist.MaskedDistribution):
        return map_base(fn.base_dist, f).mask(fn._mask)
    return f(fn)


def base_of(fn: dist.TorchDistribution) -> dist.TorchDistribution:
    """The innermost distribution of ``fn``, under the wrappers that ``map_base`` keeps."""
    while isinstance(
        fn, torch.distributions.Independent | dist.ExpandedDistribution | dist.MaskedDistribution
    ):
        fn = fn.base_dist
    return fn


#: discrete family -> (log-space relaxation, map from the log-space value to the model's)
_RELAXATIONS = {
    dist.Bernoulli: (LogitBinaryConcrete, torch.sigmoid),
    dist.OneHotCategorical: (ExpConcrete, torch.exp),
}


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
        if msg["is_observed"] or type(msg["fn"]).__name__ == "_Subsample":
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


def relax(
    model: Callable, temperature: float | torch.Tensor = 0.5, sites: Iterable[str] | None = None
) -> Callable:
    """The model with its latent discrete sites relaxed into log-space Concrete sites.

    The returned model takes the original model's arguments plus an optional keyword
    ``temperature=`` that overrides the default for that call, so a schedule can be fed
    through ``svi.step(..., temperature=schedule(step))``.

    :param model: a Pyro model with latent ``Bernoulli``/``OneHotCategorical`` sites.
    :param temperature: the prior temperature lambda (Maddison et al. use 1/2 for priors).
    :param sites: the names of the sites to relax (default: every eligible latent site).
    """

    @functools.wraps(model)
    def relaxed_model(*args, temperature: float | torch.Tensor = temperature, **kwargs):
        with RelaxMessenger(temperature, sites):
            return model(*args, **kwargs)

    return relaxed_model


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
