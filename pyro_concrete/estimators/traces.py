"""Running a model and a guide with discrete latent sites, as the estimators need.

Every estimator here starts from the same *discrete pass*: the guide runs under
:class:`DiscreteSampler`, which draws each ``Bernoulli`` / ``OneHotCategorical`` /
``Categorical`` site as the rounding ``b = H(z)`` of a continuous ``z`` (``z = l + L``,
logistic ``L``, ``b = 1[z > 0]``; or ``z = log theta + G``, Gumbel ``G``, ``b = argmax z``)
and keeps ``z``; the model is replayed against the guide's values.  REBAR and RELAX add
*relaxed passes*: the guide under :class:`RelaxedSampler` hands its code the relaxation
``sigma_lam(z') = sigmoid(z' / lam)`` / ``softmax(z' / lam)`` of a point ``z'`` (``z`` or the
conditional ``z~``), and guide and model score it with the discrete log-mass continued to
the relaxed point (:class:`LogMass`: ``v l - softplus(l)``, ``sum_k v_k log theta_k``).  In a
relaxed pass the point of each site moves with the logits the guide computes there
(``z' = z + l' - l``), so a guide whose later sites read earlier ones follows the relaxed
values with the same noise.

The costs are taken per element of the *factor plates*, the plates enclosing every sample
site of both traces (the data plate of an amortised model; the particle plate): model and
guide factorise over them, so each element's score function is multiplied by its own
cost only.
"""

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import is_validation_enabled, site_is_subsample
from pyro.util import check_model_guide_match
from torch.distributions import constraints
from torch.nn.functional import softplus

from ..distributions.noise import gumbel, logistic
from ..distributions.wrappers import base_of, map_base
from ..plates import elements, sample_sites

__all__ = [
    "Costs",
    "DiscreteSampler",
    "DiscreteSite",
    "LogMass",
    "LogitsProbe",
    "RelaxedSampler",
    "antithetic_pass",
    "check_bernoulli",
    "continuous_sites",
    "costs",
    "discrete_pass",
    "discrete_sites",
    "guide_pass",
    "relaxed_pass",
    "subsample_sites",
    "unscaled_log_prob",
    "validated",
]

#: the discrete families the estimators handle, and the name of their kind
_KINDS = (
    (torch.distributions.Bernoulli, "bernoulli"),
    (torch.distributions.OneHotCategorical, "one_hot"),
    (torch.distributions.Categorical, "categorical"),
)


def _kind(fn: dist.TorchDistribution) -> str | None:
    base = base_of(fn)
    return next((kind for cls, kind in _KINDS if isinstance(base, cls)), None)


def _is_latent(msg: dict) -> bool:
    return not msg["is_observed"] and not site_is_subsample(msg)


def discrete_sites(trace: poutine.Trace) -> dict[str, tuple[int, ...]]:
    """The latent discrete sites of a trace, with the event shape of their relaxed values
    (a categorical's includes its categories)."""
    out = {}
    for name, site in trace.nodes.items():
        kind = _kind(site["fn"]) if site["type"] == "sample" and _is_latent(site) else None
        if kind is not None:
            event = tuple(site["fn"].event_shape)
            n = tuple(base_of(site["fn"]).logits.shape[-1:])
            out[name] = event + n if kind == "categorical" else event
    return out


@dataclass
class DiscreteSite:
    """A discrete guide site of the discrete pass: its ``kind``, the normalised logits ``l``
    (broadcast to the shape of ``z``), ``z`` (a function of ``l``) and the value ``b = H(z)``."""

    kind: str
    logits: torch.Tensor
    z: torch.Tensor
    value: torch.Tensor
    event_dim: int


def _round(kind: str, z: torch.Tensor) -> torch.Tensor:
    if kind == "bernoulli":
        return (z > 0).to(z.dtype)
    if kind == "one_hot":
        return torch.nn.functional.one_hot(z.argmax(-1), z.size(-1)).to(z.dtype)
    return z.argmax(-1)


def _logits(kind: str, fn: dist.TorchDistribution) -> torch.Tensor:
    """The site's normalised logits broadcast to the shape of its ``z``."""
    logits = base_of(fn).logits
    shape = fn.batch_shape + fn.event_shape
    return logits.expand(shape + logits.shape[-1:] if kind == "categorical" else shape)


class DiscreteSampler(Messenger):
    """The discrete pass of the guide: each latent discrete site takes the value
    ``b = H(z)``, ``z = l + noise``, recorded in ``self.sites``.

    :param noise: the noise of a previous discrete pass to reuse, site by site.
    :param sign: ``-1`` reuses that noise negated (DisARM's antithetic sample).
    :param antithetic_dim: the dim of a plate of size 2 enclosing every site (counted from
        the right of the batch shape, negative): the noise drawn for the first element is
        negated for the second, and a reparameterised continuous site takes its first
        element's value in both (DisARM's pair in one pass).
    :param estimator: the name of the calling estimator, for its errors.
    """

    def __init__(
        self,
        noise: dict[str, torch.Tensor] | None = None,
        sign: int = 1,
        antithetic_dim: int | None = None,
        estimator: str = "",
    ) -> None:
        super().__init__()
        self.noise = noise
        self.sign = sign
        self.antithetic_dim = antithetic_dim
        self.estimator = estimator
        self.sites: dict[str, DiscreteSite] = {}

    def _pyro_sample(self, msg: dict) -> None:
        if not _is_latent(msg) or msg["value"] is not None:
            return
        _warn_if_enumerated(msg, self.estimator)
        kind = _kind(msg["fn"])
        if kind is None:
            if not msg["fn"].has_rsample:
                raise ValueError(_not_discrete_message(msg, self.estimator))
            if self.antithetic_dim is not None:  # the pair shares the continuous values
                value = msg["fn"].rsample()
                value = value.narrow(self.antithetic_dim - msg["fn"].event_dim, 0, 1)
                msg["value"] = value.expand(msg["fn"].shape())
            return
        if kind == "bernoulli" and is_validation_enabled():
            _check_finite_logits(msg, self.estimator)
        msg["fn"], msg["value"] = self.take(msg["name"], msg["fn"])

    def take(
        self, name: str, fn: dist.TorchDistribution
    ) -> tuple[dist.TorchDistribution, torch.Tensor]:
        """``(fn, b)`` for the discrete site ``name`` of distribution ``fn``."""
        kind = _kind(fn)
        logits = _logits(kind, fn)
        event_dim = fn.event_dim + (kind == "categorical")
        if self.noise is not None:
            noise = self.sign * self.noise[name]
        elif self.antithetic_dim is None:
            noise = (logistic if kind == "bernoulli" else gumbel)(logits.shape, logits)
        else:
            dim = self.antithetic_dim - event_dim
            shape = list(logits.shape)
            shape[dim] = 1
            noise = logistic(torch.Size(shape), logits)
            noise = torch.cat([noise, -noise], dim)
        z = logits + noise
        value = _round(kind, z.detach())
        self.sites[name] = DiscreteSite(kind, logits, z, value, event_dim)
        return fn, value

    def noises(self) -> dict[str, torch.Tensor]:
        """The noise ``z - l`` of every site, detached."""
        return {name: (s.z - s.logits).detach() for name, s in self.sites.items()}


def check_bernoulli(sites: dict[str, DiscreteSite], estimator: str, alternatives: str) -> None:
    """``ValueError`` naming a site of ``sites`` (a discrete pass's) that is not a
    ``Bernoulli``, for an estimator defined for Bernoulli sites only; ``alternatives`` are
    the estimators that take it."""
    for name, site in sites.items():
        if site.kind != "bernoulli":
            raise ValueError(
                f"{estimator}: guide site {name!r} is categorical ({site.kind}); "
                f"{estimator} is defined for Bernoulli sites only. Use {alternatives}."
            )


def _check_finite_logits(msg: dict, estimator: str) -> None:
    """A ``Bernoulli`` logit of ``+/-inf`` passes torch's validation, but its ``log_prob``
    is NaN there (``inf - inf``), in this loss as in ``Trace_ELBO``: an error instead.
    (NumPyro's ``Bernoulli`` rejects such logits itself.)"""
    logits = base_of(msg["fn"]).logits
    if torch.isinf(logits).any():
        raise ValueError(
            f"{estimator}: guide site {msg['name']!r} has a Bernoulli logit of +/-inf, "
            "where torch's Bernoulli.log_prob is NaN. Keep the logits finite (for example "
            "logits.clamp(-30, 30): sigmoid(30) is 1 in float32), or leave the elements "
            "whose value is known out of the site (sample the others, observe these); "
            "poutine.mask does not remove them from the logits."
        )


class _MatchesGuide(Messenger):
    """Checks each latent site of the model against the guide's before the model reads its
    value: the guide has the site, and a discrete one of the same family where the
    model's is discrete (``ValueError`` naming the site otherwise).  A site configured for
    enumeration warns that the estimator samples it."""

    def __init__(self, guide_trace: poutine.Trace, estimator: str) -> None:
        super().__init__()
        self.guide_trace, self.estimator = guide_trace, estimator

    def _pyro_sample(self, msg: dict) -> None:
        if not _is_latent(msg):
            return
        name = msg["name"]
        if name not in self.guide_trace.nodes:
            raise ValueError(_missing_message(name, self.estimator))
        guide_site = self.guide_trace.nodes[name]
        _warn_if_enumerated(msg, self.estimator)
        kind = _kind(msg["fn"])
        if kind is not None and _kind(guide_site["fn"]) is None:
            raise ValueError(_not_discrete_message(guide_site, self.estimator))
        if kind is not None and _kind(guide_site["fn"]) != kind:
            raise ValueError(_family_message(msg, guide_site, self.estimator))


def _warn_if_enumerated(msg: dict, estimator: str) -> None:
    if msg["infer"].get("enumerate") is not None:
        warnings.warn(
            f"{estimator} samples site {msg['name']!r}, which is configured for enumeration "
            "(config_enumerate or infer={'enumerate': ...}): the configuration is ignored. "
            "Enumerate it with TraceEnum_ELBO instead, or remove the configuration.",
            stacklevel=2,
        )


def _missing_message(name: str, estimator: str) -> str:
    return (
        f"{estimator}: the model's latent site {name!r} is not in the guide. The guide must "
        "sample every latent site of the model (a discrete one with the model's discrete "
        "family), or the model must observe it."
    )


def _family_message(msg: dict, guide_site: dict, estimator: str) -> str:
    names = {"bernoulli": "Bernoulli", "one_hot": "OneHotCategorical", "categorical": "Categorical"}
    return (
        f"{estimator}: guide site {msg['name']!r} is a {names[_kind(guide_site['fn'])]} where "
        f"the model's is a {names[_kind(msg['fn'])]}. Give the guide the discrete family of "
        "the model's site."
    )


def _not_discrete_message(msg: dict, estimator: str) -> str:
    return (
        f"{estimator}: guide site {msg['name']!r} is a {type(base_of(msg['fn'])).__name__}, "
        "neither a discrete site (Bernoulli, OneHotCategorical, Categorical) nor a "
        "reparameterised continuous one. Give the guide the discrete family of the model's "
        "site, or use Trace_ELBO / TraceGraph_ELBO for this guide."
    )


class LogMass(dist.TorchDistribution):
    """The log-mass of ``Bernoulli(logits)`` (``event="bernoulli"``: ``v l - softplus(l)``)
    or of a one-hot categorical (``sum_k v_k log_softmax(l)_k``), continued to relaxed
    values ``v`` in ``[0, 1]`` / on the simplex, where REBAR's control variate evaluates it
    (Tucker et al. 2017, Sec. 3)."""

    arg_constraints = {"logits": constraints.real}
    support = constraints.real

    def __init__(self, logits: torch.Tensor, kind: str) -> None:
        self.logits, self.kind = logits, kind
        one_hot = kind != "bernoulli"
        batch = logits.shape[:-1] if one_hot else logits.shape
        super().__init__(batch, logits.shape[-1:] if one_hot else (), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.kind == "bernoulli":
            return value * self.logits - softplus(self.logits)
        # an impossible category (logit -inf) has the relaxed value 0 exactly: it adds 0
        log_theta = self.logits.log_softmax(-1)
        return (value * log_theta.masked_fill(log_theta.isneginf(), 0.0)).sum(-1)

    def expand(self, batch_shape, _instance=None) -> "LogMass":
        event = self.logits.shape[-1:] if self.kind != "bernoulli" else ()
        return LogMass(self.logits.expand(torch.Size(batch_shape) + event), self.kind)


def _relax(kind: str, z: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    if kind == "bernoulli":
        return torch.sigmoid(z / temperature)
    # an impossible category (z = -inf) keeps the value 0 without a -inf / lam in the
    # derivative for lam
    impossible = z.isneginf()
    scaled = z.masked_fill(impossible, 0.0) / temperature
    return scaled.masked_fill(impossible, -float("inf")).softmax(-1)


class RelaxedSampler(Messenger):
    """A relaxed pass of the guide: each site of the discrete pass takes the value
    ``sigma_lam(z')``, ``z' = point + l' - l`` with ``l'`` the logits computed in this pass,
    and is scored by :class:`LogMass`.

    :param sites: the discrete pass's sites.
    :param points: ``z`` or ``z~`` per site (a function of the discrete pass's logits).
    :param temperature: the temperature lambda of each site.
    :param given: values to take as they are instead, scored by :class:`LogMass`: the
        relaxed values of the reads check of ``reads.py``, which traces the passes as
        functions of them (Pyro's check labels the values a pass computes instead), or the
        discrete values as real points, where the double control variates and RODEO
        differentiate the model.
    :param fixed_logits: score with the logits held fixed (``LogMass`` of ``l'`` detached):
        the continued log-mass then depends on the parameters through the value alone.
    """

    def __init__(
        self,
        sites: dict[str, DiscreteSite],
        points: dict[str, torch.Tensor] | None = None,
        temperature: dict[str, torch.Tensor | float] | None = None,
        given: dict[str, torch.Tensor] | None = None,
        fixed_logits: bool = False,
    ) -> None:
        super().__init__()
        self.sites, self.points = sites, points
        self.temperature, self.given, self.fixed_logits = temperature, given, fixed_logits
        self.values: dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.sites and _is_latent(msg):
            msg["fn"], msg["value"] = self.take(msg["name"], msg["fn"])

    def take(
        self, name: str, fn: dist.TorchDistribution
    ) -> tuple[dist.TorchDistribution, torch.Tensor]:
        """``(LogMass, sigma_lam(z'))`` for site ``name``, ``fn`` its distribution in this pass."""
        site = self.sites[name]
        if self.given is None:
            shift = _logits(site.kind, fn) - site.logits  # -inf - (-inf) at impossible ones
            z = self.points[name] + shift.masked_fill(site.logits.isneginf(), 0.0)
            value = _relax(site.kind, z, self.temperature[name])
        else:
            value = self.given[name]
        self.values[name] = value
        fixed = self.fixed_logits
        return map_base(
            fn, lambda b: LogMass(b.logits.detach() if fixed else b.logits, site.kind)
        ), value


class LogitsProbe(Messenger):
    """Adds a zero ``delta`` to the logits of each latent discrete site of the program it
    handles, the same ``delta`` in every pass (created, requiring gradients, at the site's
    first): the gradient of a pass's output for ``delta`` is its gradient for the site's
    logits, summed over the passes that compute them (``tune_on="logits"``)."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg: dict) -> None:
        kind = _kind(msg["fn"])
        if kind is None or not _is_latent(msg):
            return
        logits = base_of(msg["fn"]).logits
        if msg["name"] not in self.deltas:
            self.deltas[msg["name"]] = torch.zeros_like(logits, requires_grad=True)
        delta = self.deltas[msg["name"]]  # the logits were validated as the site's
        msg["fn"] = map_base(
            msg["fn"], lambda b: type(b)(logits=b.logits + delta, validate_args=False)
        )


class _LogMassModel(Messenger):
    """The model's latent discrete sites, given relaxed values, scored by ``LogMass``."""

    def _pyro_sample(self, msg: dict) -> None:
        kind = _kind(msg["fn"])
        if kind is not None and _is_latent(msg):
            msg["fn"] = map_base(msg["fn"], lambda b: LogMass(b.logits, kind))


#: the keys ``Trace.compute_log_prob`` fills (it skips a site that has them)
_LOG_PROBS = ("log_prob", "unscaled_log_prob", "log_prob_sum")


def guide_pass(
    guide: Callable,
    args: tuple,
    kwargs: dict,
    sampler: DiscreteSampler | RelaxedSampler,
    previous: poutine.Trace | None = None,
) -> poutine.Trace:
    """The guide's trace under ``sampler``.  A guide whose only sample site is one latent
    discrete site has there the same distribution in every pass (its logits depend on the
    inputs and parameters alone), and nothing else that reads its value: given
    ``previous``, an earlier pass of it, the trace is made from that one with the site's
    new value, without running the guide again."""
    sites = [] if previous is None else sample_sites(previous)
    if len(sites) != 1 or not _is_latent(sites[0]) or _kind(sites[0]["fn"]) is None:
        if previous is not None:  # every pass of a step sees the same data points
            guide = poutine.replay(guide, trace=subsample_sites(previous))
        return poutine.trace(sampler(guide)).get_trace(*args, **kwargs)
    site = {k: v for k, v in sites[0].items() if k not in _LOG_PROBS}
    site["fn"], site["value"] = sampler.take(site["name"], site["fn"])
    trace = previous.copy()  # shares the other (param, subsample) sites, which stay the same
    trace.nodes[site["name"]] = site
    return trace


def _compute_log_prob(trace: poutine.Trace) -> None:
    """``Trace.compute_log_prob`` but for the plates' subsample sites (no cost of theirs)."""
    trace.compute_log_prob(lambda name, site: not site_is_subsample(site))


def discrete_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    sampler: DiscreteSampler,
    previous: poutine.Trace | None = None,
) -> tuple[poutine.Trace, poutine.Trace]:
    """``(model_trace, guide_trace)`` of the guide under ``sampler`` (:func:`guide_pass`,
    ``previous`` an earlier guide trace) and the model replayed against it; log densities
    computed.  A latent site of the model that the guide lacks, or has with another family
    (a discrete site where the guide's is not, or another discrete family), raises
    ``ValueError``; other mismatches warn as in ``Trace_ELBO``, under validation."""
    guide_trace = guide_pass(guide, args, kwargs, sampler, previous)
    replayed = poutine.replay(_MatchesGuide(guide_trace, sampler.estimator)(model), guide_trace)
    model_trace = poutine.trace(replayed).get_trace(*args, **kwargs)
    if is_validation_enabled():
        check_model_guide_match(model_trace, guide_trace)
    _compute_log_prob(model_trace)
    _compute_log_prob(guide_trace)
    return model_trace, guide_trace


def relaxed_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    sampler: RelaxedSampler,
    estimator: str,
    discrete_guide_trace: poutine.Trace | None = None,
) -> tuple[poutine.Trace, poutine.Trace]:
    """``(model_trace, guide_trace)`` at the relaxed values of ``sampler`` (the guide's by
    :func:`guide_pass` from ``discrete_guide_trace``); log densities computed.  A model that
    cannot take relaxed values raises ``ValueError`` saying so."""
    guide_trace = guide_pass(guide, args, kwargs, sampler, discrete_guide_trace)
    replayed = _LogMassModel()(poutine.replay(model, trace=guide_trace))
    try:
        model_trace = poutine.trace(replayed).get_trace(*args, **kwargs)
        _compute_log_prob(model_trace)
    except (IndexError, RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"{estimator} evaluates the model at relaxed values of its discrete sites (a "
            "point of (0, 1) for a Bernoulli, of the simplex for a categorical), and the "
            "model failed there: "
            f"{error!r}. Write the model so that it accepts them (arithmetic instead of "
            "indexing: pyro_concrete.select(table, z) reads a categorical), or use "
            "RlooELBO, VimcoELBO, NvilELBO or (Bernoulli sites) DisarmELBO, which evaluate "
            "it at discrete values only."
        ) from error
    _compute_log_prob(guide_trace)
    return model_trace, guide_trace


def antithetic_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    sampler: DiscreteSampler,
    traces: tuple[poutine.Trace, poutine.Trace],
) -> tuple[tuple[poutine.Trace, poutine.Trace], DiscreteSampler]:
    """The antithetic pass of a discrete pass (``traces``, under ``sampler``): the discrete
    pass whose noise is the first's negated (``1 - u`` for ``u``), sharing the values of
    its continuous sites (DisARM's ``b~``); its traces and its sampler."""
    anti = DiscreteSampler(sampler.noises(), sign=-1, estimator=sampler.estimator)
    guide = poutine.replay(guide, trace=continuous_sites(traces[1], set(sampler.sites)))
    return discrete_pass(model, guide, args, kwargs, anti, previous=traces[1]), anti


def validated(on: bool) -> contextlib.AbstractContextManager:
    """Pyro's and torch's validation as set (``on``), or off inside the block: for the passes
    of a step after its first pass, which run the programs validated there at the same data
    (the first step of a model and guide validates every pass)."""
    return contextlib.nullcontext() if on else pyro.validation_enabled(False)


def continuous_sites(trace: poutine.Trace, discrete: set[str]) -> poutine.Trace:
    """The latent sites of ``trace`` not in ``discrete``, to replay (DisARM's antithetic
    pass shares their values)."""
    out = poutine.Trace()
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and _is_latent(site) and name not in discrete:
            out.add_node(name, **site)
    return out


def subsample_sites(trace: poutine.Trace) -> poutine.Trace:
    """The plates' subsample sites of ``trace`` (the indices they drew), to replay."""
    out = poutine.Trace()
    for name, site in trace.nodes.items():
        if site_is_subsample(site):
            out.add_node(name, **site)
    return out


@dataclass
class Costs:
    """Per-element quantities of one pass: ``value`` ``= log p - log q`` (the ELBO's
    integrand ``f``), ``direct`` the same without the guide's discrete log-masses (what
    ``f`` depends on besides the discrete values), ``score`` the log-mass of each discrete
    guide site.  ``value`` and ``direct`` are scaled (subsampling, ``poutine.scale``);
    ``score`` is not: the score-function identity ``grad E_q[f] = E_q[f grad log q] +
    E_q[grad f]`` takes the score of ``q`` itself, and ``f`` carries the scale once (as
    Pyro's ``ScoreParts`` does)."""

    value: torch.Tensor
    direct: torch.Tensor
    score: dict[str, torch.Tensor]


def costs(
    model_trace: poutine.Trace,
    guide_trace: poutine.Trace,
    discrete: set[str],
    dims: set[int],
    ndim: int,
) -> Costs:
    """The :class:`Costs` of a pass, the guide's sites in ``discrete`` being discrete."""

    def total(trace: poutine.Trace, keep: Callable[[str], bool]) -> torch.Tensor:
        terms = [
            elements(site["log_prob"], dims, ndim)
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and keep(name) and not site_is_subsample(site)
        ]
        return sum(terms[1:], terms[0]) if terms else torch.zeros((1,) * ndim)

    model = total(model_trace, lambda name: True)
    direct = model - total(guide_trace, lambda name: name not in discrete)
    value = direct - total(guide_trace, lambda name: name in discrete)
    score = {
        name: elements(unscaled_log_prob(guide_trace.nodes[name]), dims, ndim) for name in discrete
    }
    return Costs(value, direct, score)


def unscaled_log_prob(site: dict) -> torch.Tensor:
    """The site's log density, masked but not scaled (Pyro's score function is unscaled)."""
    return scale_and_mask(site["unscaled_log_prob"], mask=site["mask"])
