"""Running a model and a guide with discrete latent sites, as the estimators need.

Every estimator here starts from the same *discrete pass*: the guide runs under
:class:`DiscreteSampler`, which draws each ``Bernoulli`` / ``OneHotCategorical`` /
``Categorical`` site as the rounding ``b = H(z)`` of a continuous ``z`` (``z = l + L``,
logistic ``L``, ``b = 1[z > 0]``; or ``z = log theta + G``, Gumbel ``G``, ``b = argmax z``)
and keeps ``z`` for the estimators that relax it (a Bernoulli ``b`` is drawn without ``z``
for the others); the model is replayed against the guide's values.  REBAR and RELAX add
*relaxed passes*: the guide under :class:`RelaxedSampler` hands its code the relaxation
``sigma_lam(z') = sigmoid(z' / lam)`` / ``softmax(z' / lam)`` of a point ``z'`` (``z`` or the
conditional ``z~``), and guide and model score it with the discrete log-mass continued to
the relaxed point (:class:`LogMass`: ``v l - softplus(l)``, ``sum_k v_k log theta_k``).  In a
relaxed pass the point of each site moves with the logits the guide computes there
(``z' = z + l' - l``), so a guide whose later sites read earlier ones follows the relaxed
values with the same noise.

The costs are taken per element of the *factor plates*, the plates enclosing every sample
site of both traces (the data plate of an amortised model): model and guide factorise
over them, so each element's score function is multiplied by its own cost only.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array
from numpyro.distributions import constraints
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.primitives import Messenger
from numpyro.util import check_model_guide_match

from ..distributions import OneHotCategorical
from ..distributions.noise import _open_uniform, gumbel, logistic
from ..distributions.wrappers import base_of, map_base
from ..plates import elements

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
]

#: the discrete families the estimators handle, and the name of their kind
_KINDS = (
    ((dist.BernoulliLogits, dist.BernoulliProbs), "bernoulli"),
    ((OneHotCategorical,), "one_hot"),
    ((dist.CategoricalLogits, dist.CategoricalProbs), "categorical"),
)


def _kind(fn: dist.Distribution) -> str | None:
    base = base_of(fn)
    return next((kind for classes, kind in _KINDS if isinstance(base, classes)), None)


def _is_latent(msg: dict) -> bool:
    return msg["type"] == "sample" and not msg["is_observed"]


def discrete_sites(tr: dict) -> dict[str, tuple[int, ...]]:
    """The latent discrete sites of a trace, with the event shape of their relaxed values
    (a categorical's includes its categories)."""
    out = {}
    for name, site in tr.items():
        kind = _kind(site["fn"]) if _is_latent(site) else None
        if kind is not None:
            event = site["fn"].event_shape
            out[name] = (
                event + base_of(site["fn"]).logits.shape[-1:] if kind == "categorical" else event
            )
    return out


@dataclass
class DiscreteSite:
    """A discrete guide site of the discrete pass: its ``kind``, the normalised logits ``l``
    (broadcast to the shape of ``z``), ``z`` (a function of ``l``; None where the pass
    did not keep it) and the value ``b = H(z)``."""

    kind: str
    logits: Array
    z: Array | None
    value: Array
    event_dim: int


def _round(kind: str, z: Array) -> Array:
    if kind == "bernoulli":
        return (z > 0).astype(z.dtype)
    if kind == "one_hot":
        return jax.nn.one_hot(jnp.argmax(z, -1), z.shape[-1], dtype=z.dtype)
    return jnp.argmax(z, -1)


def _logits(kind: str, fn: dist.Distribution) -> Array:
    """The site's normalised logits broadcast to the shape of its ``z``."""
    logits = base_of(fn).logits
    if kind == "categorical":
        logits = jax.nn.log_softmax(logits, -1)
    shape = fn.batch_shape + fn.event_shape
    return jnp.broadcast_to(logits, shape + logits.shape[-1:] if kind == "categorical" else shape)


class DiscreteSampler(Messenger):
    """The discrete pass of the guide: each latent discrete site takes the value
    ``b = H(z)``, ``z = l + sign * noise``, recorded in ``self.sites``.

    :param rng_key: the key of the noise (one key per site, folded in by its order).
    :param sign: ``-1`` negates the noise that the same key draws (DisARM's antithetic
        sample of a Bernoulli site: logistic noise is symmetric).
    :param keep_z: keep ``z`` (REBAR and RELAX relax it).  Without it a Bernoulli site's
        value is drawn as the same ``b`` without logarithms: with ``L = log U - log(1 - U)``,
        ``l + L > 0`` exactly when ``1 - U < sigmoid(l)``, and ``-L`` swaps ``U`` and
        ``1 - U``.
    :param estimator: the name of the calling estimator, for its errors.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        rng_key: Array | None = None,
        sign: int = 1,
        keep_z: bool = True,
        estimator: str = "",
    ) -> None:
        super().__init__(fn)
        self.rng_key, self.sign, self.keep_z, self.estimator = rng_key, sign, keep_z, estimator
        self.sites: dict[str, DiscreteSite] = {}

    def process_message(self, msg: dict) -> None:
        if not _is_latent(msg) or msg["value"] is not None:
            return
        _warn_if_enumerated(msg, self.estimator)
        if _kind(msg["fn"]) is None:
            if not msg["fn"].has_rsample:
                raise ValueError(_not_discrete_message(msg, self.estimator))
            return
        msg["fn"], msg["value"] = self.take(msg["name"], msg["fn"])

    def take(self, name: str, fn: dist.Distribution) -> tuple[dist.Distribution, Array]:
        """``(fn, b)`` for the discrete site ``name`` of distribution ``fn``."""
        kind = _kind(fn)
        logits = _logits(kind, fn)
        key = jax.random.fold_in(self.rng_key, len(self.sites))
        if kind == "bernoulli" and not self.keep_z:
            u = _open_uniform(key, logits.shape, logits)
            threshold = jax.nn.sigmoid(jax.lax.stop_gradient(logits))
            z, value = None, ((1 - u if self.sign > 0 else u) < threshold).astype(logits.dtype)
        else:
            noise = (logistic if kind == "bernoulli" else gumbel)(key, logits.shape, logits)
            z = logits + self.sign * noise
            value = _round(kind, jax.lax.stop_gradient(z))
        self.sites[name] = DiscreteSite(
            kind, logits, z, value, fn.event_dim + (kind == "categorical")
        )
        return fn, value


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


class _MatchesGuide(Messenger):
    """Checks each latent site of the model against the guide's before the model reads its
    value: the guide has the site, and a discrete one of the same family where the
    model's is discrete (``ValueError`` naming the site otherwise).  A site configured for
    enumeration warns that the estimator samples it."""

    def __init__(self, fn: Callable, guide_trace: dict, estimator: str) -> None:
        super().__init__(fn)
        self.guide_trace, self.estimator = guide_trace, estimator

    def process_message(self, msg: dict) -> None:
        if msg["type"] != "sample" or not _is_latent(msg):
            return
        name = msg["name"]
        if name not in self.guide_trace:
            raise ValueError(_missing_message(name, self.estimator))
        guide_site = self.guide_trace[name]
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


class LogMass(dist.Distribution):
    """The log-mass of ``Bernoulli(logits)`` (``kind="bernoulli"``: ``v l - softplus(l)``)
    or of a one-hot categorical (``sum_k v_k log_softmax(l)_k``), continued to relaxed
    values ``v`` in ``[0, 1]`` / on the simplex, where REBAR's control variate evaluates it
    (Tucker et al. 2017, Sec. 3)."""

    arg_constraints = {"logits": constraints.real}
    support = constraints.real

    def __init__(self, logits: Array, kind: str) -> None:
        logits = jnp.asarray(logits)  # NumPyro keeps a Python float as given
        self.logits, self.kind = logits, kind
        one_hot = kind != "bernoulli"
        batch = logits.shape[:-1] if one_hot else logits.shape
        super().__init__(batch, logits.shape[-1:] if one_hot else (), validate_args=False)

    def log_prob(self, value: Array) -> Array:
        if self.kind == "bernoulli":
            return value * self.logits - jax.nn.softplus(self.logits)
        # an impossible category (logit -inf) has the relaxed value 0 exactly: it adds 0
        log_theta = jax.nn.log_softmax(self.logits, -1)
        return (value * jnp.where(jnp.isneginf(log_theta), 0.0, log_theta)).sum(-1)


def _relax(kind: str, z: Array, temperature: Array | float) -> Array:
    if kind == "bernoulli":
        return jax.nn.sigmoid(z / temperature)
    # an impossible category (z = -inf) keeps the value 0 without a -inf / lam in the
    # derivative for lam
    impossible = jnp.isneginf(z)
    scaled = jnp.where(impossible, 0.0, z) / temperature
    return jax.nn.softmax(jnp.where(impossible, -jnp.inf, scaled), -1)


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
    :param fixed_logits: score with the logits held fixed (``LogMass`` of ``l'`` under
        ``stop_gradient``): the continued log-mass then depends on the parameters through
        the value alone.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        sites: dict[str, DiscreteSite] | None = None,
        points: dict[str, Array] | None = None,
        temperature: dict | None = None,
        given: dict[str, Array] | None = None,
        fixed_logits: bool = False,
    ) -> None:
        super().__init__(fn)
        self.sites, self.points = sites, points
        self.temperature, self.given = temperature, given
        self.fixed_logits = fixed_logits
        self.values: dict[str, Array] = {}

    def process_message(self, msg: dict) -> None:
        if msg["name"] in self.sites and _is_latent(msg):
            msg["fn"], msg["value"] = self.take(msg["name"], msg["fn"])

    def take(self, name: str, fn: dist.Distribution) -> tuple[dist.Distribution, Array]:
        """``(LogMass, sigma_lam(z'))`` for site ``name``, ``fn`` its distribution in this pass."""
        site = self.sites[name]
        if self.given is None:
            shift = _logits(site.kind, fn) - site.logits  # -inf - (-inf) at impossible ones
            z = self.points[name] + jnp.where(jnp.isneginf(site.logits), 0.0, shift)
            value = _relax(site.kind, z, self.temperature[name])
        else:
            value = self.given[name]
        self.values[name] = value
        hold = jax.lax.stop_gradient if self.fixed_logits else (lambda logits: logits)
        return map_base(fn, lambda b: LogMass(hold(b.logits), site.kind)), value


class LogitsProbe(Messenger):
    """Adds ``deltas[name]`` (zeros) to the logits of each latent discrete site ``name`` of
    the program it handles, the same in every pass: the gradient of a pass's output for
    ``deltas`` is its gradient for the sites' logits, summed over the passes that compute
    them (``tune_on="logits"``).  Without ``deltas``, records each site's logits' shape and
    dtype in ``shapes`` instead (under ``jax.eval_shape``)."""

    def __init__(
        self,
        fn: Callable | None = None,
        deltas: dict[str, Array] | None = None,
        shapes: dict[str, jax.ShapeDtypeStruct] | None = None,
    ) -> None:
        super().__init__(fn)
        self.deltas, self.shapes = deltas, shapes

    def process_message(self, msg: dict) -> None:
        if not _is_latent(msg) or _kind(msg["fn"]) is None:
            return
        name, logits = msg["name"], base_of(msg["fn"]).logits
        if self.deltas is None:
            self.shapes.setdefault(name, jax.ShapeDtypeStruct(logits.shape, logits.dtype))
            return
        delta = self.deltas[name]
        msg["fn"] = map_base(msg["fn"], lambda b: type(b)(logits=b.logits + delta))


class _LogMassModel(Messenger):
    """The model's latent discrete sites, given relaxed values, scored by ``LogMass``."""

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and _is_latent(msg):
            kind = _kind(msg["fn"])
            if kind is not None:
                msg["fn"] = map_base(msg["fn"], lambda b: LogMass(b.logits, kind))


def _log_probs(tr: dict) -> dict:
    """Each sample site's ``log_prob``, scaled (subsampling, ``handlers.scale``), and its
    ``unscaled_log_prob``, as Pyro's traces keep them."""
    for site in tr.values():
        if site["type"] == "sample":
            log_prob = site["unscaled_log_prob"] = site["fn"].log_prob(site["value"])
            site["log_prob"] = log_prob if site["scale"] is None else site["scale"] * log_prob
    return tr


def guide_pass(
    guide: Callable,
    args: tuple,
    kwargs: dict,
    params: dict,
    rng_key: Array,
    sampler: DiscreteSampler | RelaxedSampler,
    previous: dict | None = None,
) -> dict:
    """The guide's trace under ``sampler``, parameters from ``params``.  A guide whose only
    sample site is one latent discrete site has there the same distribution in every pass
    (its logits depend on the inputs and parameters alone), and nothing else that reads
    its value: given ``previous``, an earlier pass of it, the trace is made from that one
    with the site's new value, without running the guide again."""
    sites = [] if previous is None else _program_sites(previous)
    if len(sites) != 1 or not _is_latent(sites[0]) or _kind(sites[0]["fn"]) is None:
        if previous is not None:  # every pass of a step sees the same data points
            guide = replay(guide, trace=subsample_sites(previous))
        sampler.fn = substitute(seed(guide, rng_key), data=params)
        return trace(sampler).get_trace(*args, **kwargs)
    out = {k: dict(s) for k, s in previous.items()}  # the param and plate sites stay the same
    site = out[sites[0]["name"]]
    site["fn"], site["value"] = sampler.take(site["name"], site["fn"])
    return out


def _program_sites(tr: dict) -> list[dict]:
    """The trace's sample and deterministic sites (observed ones included): what a guide
    computes from its values."""
    return [site for site in tr.values() if site["type"] in ("sample", "deterministic")]


def discrete_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    params: dict,
    rng_key: Array,
    sampler: DiscreteSampler,
    previous: dict | None = None,
) -> tuple[dict, dict]:
    """``(model_trace, guide_trace)`` of the guide under ``sampler`` (:func:`guide_pass`,
    ``previous`` an earlier guide trace) and the model replayed against it, parameters
    from ``params``; log densities in ``site["log_prob"]``.  A latent site of the model that
    the guide lacks, or has with another family (a discrete site where the guide's is not,
    or another discrete family), raises ``ValueError``; other mismatches warn, as
    NumPyro's ``TraceGraph_ELBO`` does (when the loss is traced, under ``jit``)."""
    model_key, guide_key = jax.random.split(rng_key)
    guide_trace = guide_pass(guide, args, kwargs, params, guide_key, sampler, previous)
    matched = _MatchesGuide(seed(model, model_key), guide_trace, sampler.estimator)
    replayed = substitute(replay(matched, guide_trace), data=params)
    model_trace = trace(replayed).get_trace(*args, **kwargs)
    check_model_guide_match(model_trace, guide_trace)
    return _log_probs(model_trace), _log_probs(guide_trace)


def relaxed_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    params: dict,
    rng_key: Array,
    sampler: RelaxedSampler,
    estimator: str,
    discrete_guide_trace: dict | None = None,
) -> tuple[dict, dict]:
    """``(model_trace, guide_trace)`` at the relaxed values of ``sampler`` (the guide's by
    :func:`guide_pass` from ``discrete_guide_trace``); log densities in
    ``site["log_prob"]``.  A model that cannot take relaxed values raises ``ValueError``
    saying so."""
    model_key, guide_key = jax.random.split(rng_key)
    guide_trace = guide_pass(guide, args, kwargs, params, guide_key, sampler, discrete_guide_trace)
    replayed = substitute(replay(seed(model, model_key), guide_trace), data=params)
    try:
        # the observed values and their support checks are those of the discrete pass,
        # which already masked any value outside the support: not repeated here
        with numpyro.validation_enabled(False):
            model_trace = _log_probs(trace(_LogMassModel(replayed)).get_trace(*args, **kwargs))
    except (IndexError, TypeError, ValueError) as error:
        raise ValueError(
            f"{estimator} evaluates the model at relaxed values of its discrete sites (a "
            "point of (0, 1) for a Bernoulli, of the simplex for a categorical), and the "
            f"model failed there: {error!r}. Write the model so that it accepts them "
            "(arithmetic instead of indexing: numpyro_concrete.select(table, z) reads a "
            "categorical), or use RlooELBO, VimcoELBO, NvilELBO or (Bernoulli sites) "
            "DisarmELBO, which evaluate it at discrete values only."
        ) from error
    return model_trace, _log_probs(guide_trace)


def antithetic_pass(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    params: dict,
    rng_key: Array,
    sampler: DiscreteSampler,
    traces: tuple[dict, dict],
) -> tuple[tuple[dict, dict], DiscreteSampler]:
    """The antithetic pass of a discrete pass (``traces``, under ``sampler``, drawn from
    ``rng_key``): the discrete pass whose noise is the first's negated (``1 - u`` for
    ``u``: the same key, sign ``-1``), sharing the values of its continuous sites
    (DisARM's ``b~``; the same key alone does not give them: a replayed subsample draws
    no key); its traces and its sampler."""
    anti = DiscreteSampler(
        rng_key=sampler.rng_key, sign=-1, keep_z=sampler.keep_z, estimator=sampler.estimator
    )
    guide = replay(guide, trace=continuous_sites(traces[1], set(sampler.sites)))
    return discrete_pass(model, guide, args, kwargs, params, rng_key, anti, traces[1]), anti


def continuous_sites(tr: dict, discrete: set[str]) -> dict:
    """The latent sites of ``tr`` not in ``discrete``, to replay (DisARM's antithetic pass
    shares their values)."""
    return {
        name: site
        for name, site in tr.items()
        if site["type"] == "sample" and _is_latent(site) and name not in discrete
    }


def subsample_sites(tr: dict) -> dict:
    """The subsampled plates' sites of ``tr`` (the indices they drew), to replay."""
    return {
        k: s
        for k, s in tr.items()
        if s["type"] == "plate" and s["args"][1] not in (None, s["args"][0])
    }


@jax.tree_util.register_dataclass
@dataclass
class Costs:
    """Per-element quantities of one pass: ``value`` ``= log p - log q`` (the ELBO's
    integrand ``f``), ``direct`` the same without the guide's discrete log-masses (what
    ``f`` depends on besides the discrete values), ``score`` the log-mass of each discrete
    guide site.  ``value`` and ``direct`` are scaled (subsampling, ``handlers.scale``);
    ``score`` is not: the score-function identity ``grad E_q[f] = E_q[f grad log q] +
    E_q[grad f]`` takes the score of ``q`` itself, and ``f`` carries the scale once (as in
    Pyro's ``ScoreParts``)."""

    value: Array
    direct: Array
    score: dict[str, Array]


def costs(
    model_trace: dict, guide_trace: dict, discrete: set[str], dims: set[int], ndim: int
) -> Costs:
    """The :class:`Costs` of a pass, the guide's sites in ``discrete`` being discrete."""

    def total(tr: dict, keep: Callable[[str], bool]) -> Array:
        out = jnp.zeros((1,) * ndim)
        for name, site in tr.items():
            if site["type"] == "sample" and keep(name):
                out = out + elements(site["log_prob"], dims, ndim)
        return out

    model = total(model_trace, lambda name: True)
    direct = model - total(guide_trace, lambda name: name not in discrete)
    value = direct - total(guide_trace, lambda name: name in discrete)
    score = {
        name: elements(guide_trace[name]["unscaled_log_prob"], dims, ndim) for name in discrete
    }
    return Costs(value, direct, score)
