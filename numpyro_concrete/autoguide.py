"""Enumeration-free relaxed autoguides.

``AutoRelaxedDiscrete`` gives every relaxed site (a ``LogitBinaryConcrete`` or
``ExpConcrete`` site, as ``relax`` makes them) a guide of the same log-space family with
a learnable ``log_alpha``, initialised from ``Normal(0, init_scale)``, at the posterior
temperature (2/3 by default, the choice of Maddison et al. 2017, Sec. 5) or a schedule
of it, read at the ``relax_step`` keyword of each call as ``relax`` does.
``AutoRelaxed`` pairs it with an ``AutoNormal`` for the continuous sites.  Both follow
``AutoNormal``: one parameter per site, full size along subsampled plates, indexed by
the plates at run time.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.handlers import block, seed
from numpyro.infer.autoguide import AutoGuide, AutoGuideList, AutoNormal
from numpyro.infer.initialization import init_to_uniform
from numpyro.primitives import Messenger

from .distributions import ExpConcrete, LogitBinaryConcrete
from .distributions.wrappers import base_of, map_base
from .infer import zero_temperature_limit
from .relax import _RELAXATIONS, RELAX_STEP, Temperature, temperature_at

__all__ = ["AutoRelaxed", "AutoRelaxedDiscrete", "is_relaxed_site"]

_FAMILIES = (ExpConcrete, LogitBinaryConcrete)


def is_relaxed_site(msg: dict) -> bool:
    """Whether a sample site is a latent log-space relaxed discrete site."""
    return (
        msg["type"] == "sample" and not msg["is_observed"] and type(base_of(msg["fn"])) in _FAMILIES
    )


def _is_other_site(msg: dict) -> bool:
    """Sites the relaxed part must not see: all but relaxed sites and plates."""
    return msg["type"] in ("sample", "deterministic") and not is_relaxed_site(msg)


def _is_relaxed_or_deterministic_site(msg: dict) -> bool:
    """Sites the continuous part must not see (NumPyro's AutoGuideList rejects guide parts
    that expose deterministic sites)."""
    return msg["type"] == "deterministic" or is_relaxed_site(msg)


def _check_no_discrete_sites(owner: str, model, *args, **kwargs) -> dict:
    """A plain trace of ``model``; raise, naming the site and what to do, if a latent site
    is discrete."""
    # Compile-time evaluation keeps what the model computes from constants (its priors'
    # logits, say) concrete when the guide is set up inside jit, so _ruled_out can read it.
    with block(), jax.ensure_compile_time_eval():
        trace = handlers.trace(seed(model, numpyro.prng_key())).get_trace(*args, **kwargs)
    for name, site in trace.items():
        if site["type"] == "sample" and not site["is_observed"] and site["fn"].support.is_discrete:
            raise ValueError(_discrete_site_message(owner, name, base_of(site["fn"])))
    return trace


class _finite_logits(Messenger):
    """Relaxed categorical sites with their ``-inf`` logits made 0, for the prototype only:
    NumPyro's ``initialize_model`` needs a point of finite density inside the support, and
    a prior that rules out categories has none in the chart of the log-simplex.  The guide
    keeps those categories ruled out (``_ruled_out``, read from a plain trace)."""

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and isinstance(base_of(msg["fn"]), ExpConcrete):
            msg["fn"] = map_base(
                msg["fn"],
                lambda b: ExpConcrete(
                    b.temperature, logits=jnp.where(jnp.isneginf(b.logits), 0.0, b.logits)
                ),
            )


def _discrete_site_message(owner: str, name: str, base: dist.Distribution) -> str:
    family = type(base).__name__
    if type(base) in _RELAXATIONS:
        return (
            f"{owner}: site {name!r} is a discrete {family} site. Relax the model first, "
            f"{owner}(numpyro_concrete.relax(model)), with the site among relax's sites= if given."
        )
    return (
        f"{owner}: site {name!r} is a {family}, which relax() leaves discrete: only "
        "Bernoulli and OneHotCategorical sites relax (a Categorical one as "
        "OneHotCategorical read with select). Sum it out (enumerate it with "
        "TraceEnum_ELBO, or by hand), or make it continuous; relax(model, sites=[...]) "
        "leaves a listed site discrete, and the relaxed autoguides cannot guide it."
    )


@contextmanager
def _finite_logits_in(guide: AutoGuide) -> Iterator[None]:
    """``guide.model`` under :class:`_finite_logits` while the prototype is set up."""
    model, guide.model = guide.model, _finite_logits(guide.model)
    try:
        yield
    finally:
        guide.model = model


def _ruled_out(owner: str, name: str, site: dict, full_sizes: dict) -> Array | None:
    """Where the prior of relaxed categorical site ``name`` has a ``-inf`` logit (a
    category the model rules out), reduced to size 1 along every dimension where it is
    constant; ``None`` when it rules nothing out, or when the logits are not known while
    the guide is set up under ``jit`` (computed from the data or from other latent values).
    The guide gives those categories a ``-inf`` logit too: a guide sample there would have
    prior density 0."""
    fn, base = site["fn"], base_of(site["fn"])
    if not isinstance(base, ExpConcrete) or isinstance(base.logits, jax.core.Tracer):
        return None
    with jax.ensure_compile_time_eval():  # a constant, also when set up under jit
        mask = jnp.isneginf(base.logits)
        if not mask.any():
            return None
        for dim in range(mask.ndim - 1):
            if (mask.all(dim, keepdims=True) == mask.any(dim, keepdims=True)).all():
                mask = mask.any(dim, keepdims=True)
    for frame in site["cond_indep_stack"]:
        dim = frame.dim - fn.event_dim
        varies = -dim <= mask.ndim and mask.shape[dim] > 1
        if varies and full_sizes[frame.name] != frame.size:
            raise ValueError(
                f"{owner}: site {name!r} rules out different categories for different "
                f"members of the subsampled plate {frame.name!r} (-inf logits), which a "
                "guide with one parameter per data point cannot follow under subsampling: "
                "write a guide that reads the mask, or do not subsample that plate."
            )
    return mask


class AutoRelaxedDiscrete(AutoGuide):
    """A guide ``q(y_z) = Family(lambda, log_alpha_z)`` for each relaxed site ``z``.

    ``Family`` is the site's own log-space family (``LogitBinaryConcrete`` or
    ``ExpConcrete``), so the ELBO uses the closed-form densities in log space and
    pathwise gradients, with no enumeration and no score function.  The parameter of
    site ``z`` is ``f"{z}_{prefix}_log_alpha"``.

    :param model: a model whose latent sites are all relaxed (``relax(model)``).
    :param temperature: the posterior temperature lambda, or a schedule
        ``step -> lambda`` evaluated at the ``relax_step`` keyword of each call.
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param prefix: as for ``AutoNormal``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: Temperature = 2 / 3,
        init_scale: float = 0.01,
        *,
        prefix: str = "auto",
        create_plates=None,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, got {init_scale}.")
        self._temperature = temperature
        self._init_scale = init_scale
        super().__init__(model, prefix=prefix, create_plates=create_plates)

    @property
    def temperature(self) -> Temperature:
        """The posterior temperature or its schedule (fixed at construction)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: Temperature) -> None:
        raise AttributeError(_READ_ONLY_TEMPERATURE)

    def _setup_prototype(self, *args, **kwargs) -> None:
        owner = type(self).__name__
        plain = _check_no_discrete_sites(owner, self.model, *args, **kwargs)
        full_sizes = {k: site["args"][0] for k, site in plain.items() if site["type"] == "plate"}
        ruled_out = {
            k: _ruled_out(owner, k, site, full_sizes)
            for k, site in plain.items()
            if is_relaxed_site(site)
        }
        with _finite_logits_in(self):
            super()._setup_prototype(*args, **kwargs)
        self._families: dict[str, type] = {}
        self._shapes: dict[str, tuple[tuple[int, ...], int]] = {}
        self._ruled_out: dict[str, Array | None] = {}
        for name, site in self.prototype_trace.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            family = type(base_of(site["fn"]))
            if family not in _FAMILIES:
                raise ValueError(
                    f"{type(self).__name__}: site {name!r} is a {family.__name__}, not a "
                    "relaxed discrete site: use AutoRelaxed for models that also have "
                    "continuous latent sites."
                )
            fn = site["fn"]
            shape = list(fn.batch_shape + fn.event_shape)
            for frame in site["cond_indep_stack"]:
                shape[frame.dim - fn.event_dim] = self._prototype_frame_full_sizes[frame.name]
            self._families[name] = family
            self._shapes[name] = (tuple(shape), fn.event_dim)
            self._ruled_out[name] = ruled_out[name]
        # Drawn once, here, as AutoNormal draws its initial locations: a param initialiser
        # that asked for its own key would see a different key on the second ``svi.init``.
        keys = jax.random.split(numpyro.prng_key(), max(len(self._shapes), 1))
        self._init_values = {
            name: self._init_scale * jax.random.normal(key, shape)
            for key, (name, (shape, _)) in zip(keys, self._shapes.items(), strict=False)
        }

    def _ensure_prototype(self, *args, **kwargs) -> None:
        """Trace the model once if the guide has not yet seen it (a fresh guide)."""
        if self.prototype_trace is None:
            with seed(rng_seed=0):
                self._setup_prototype(*args, **kwargs)

    def _param_name(self, name: str) -> str:
        return f"{name}_{self.prefix}_log_alpha"

    def _log_alpha(self, name: str, log_alpha: Array) -> Array:
        """The guide's logits of site ``name``: ``-inf`` where the prior's are."""
        mask = self._ruled_out[name]
        return log_alpha if mask is None else jnp.where(mask, -jnp.inf, log_alpha)

    def _guide_fn(self, name: str, event_dim: int, log_alpha: Array, temperature, hard=False):
        """The guide of site ``name`` at ``temperature``, or its zero-temperature limit."""
        fn = self._families[name](temperature, logits=self._log_alpha(name, log_alpha))
        fn = zero_temperature_limit(fn) if hard else fn
        return fn.to_event(event_dim - fn.event_dim)

    def __call__(self, *args, **kwargs) -> dict[str, Array]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        step = kwargs.get(RELAX_STEP, 0)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, (_, event_dim) in self._shapes.items():
            with ExitStack() as stack:
                for frame in self.prototype_trace[name]["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                log_alpha = numpyro.param(
                    self._param_name(name), self._init_values[name], event_dim=event_dim
                )
                temperature = temperature_at(self._temperature, step)
                fn = self._guide_fn(name, event_dim, log_alpha, temperature)
                result[name] = numpyro.sample(name, fn)
        return result

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs):
        """Samples of the discrete posterior, in the discrete model's representation:
        the zero-temperature limit of the guide (``Bernoulli`` integers, one-hot
        vectors), ready for ``Predictive(model, posterior_samples=...)``."""
        self._ensure_prototype(*args, **kwargs)
        with seed(rng_seed=rng_key):
            return {
                name: numpyro.sample(
                    name,
                    self._guide_fn(
                        name, event_dim, params[self._param_name(name)], 1.0, hard=True
                    ).expand_by(sample_shape),
                )
                for name, (_, event_dim) in self._shapes.items()
            }

    def probs(self, params: dict, *args, **kwargs) -> dict[str, Array]:
        """The learned discrete probabilities of each relaxed site: ``sigmoid(log_alpha)``
        (the probability of 1) for a Bernoulli site, ``softmax(log_alpha)`` for a
        categorical one.  A guide that has not run yet traces the model once, with
        ``*args, **kwargs``."""
        self._ensure_prototype(*args, **kwargs)
        return {
            name: family(1.0, logits=self._log_alpha(name, params[self._param_name(name)])).probs
            for name, family in self._families.items()
        }

    def median(self, params: dict, relax_step: ArrayLike = 0) -> dict[str, Array]:
        """The noise-free relaxed value of each site in log space at the temperature of
        ``relax_step``: ``log alpha / lambda`` (the logistic's median) or
        ``log_softmax(log alpha / lambda)``."""
        self._ensure_prototype()
        temperature = jnp.asarray(temperature_at(self._temperature, relax_step))
        medians = {}
        for name, family in self._families.items():
            y = self._log_alpha(name, params[self._param_name(name)]) / temperature
            medians[name] = jax.nn.log_softmax(y, -1) if family is ExpConcrete else y
        return medians

    def quantiles(self, params: dict, quantiles) -> dict[str, Array]:
        raise NotImplementedError(_NO_QUANTILES)


_READ_ONLY_TEMPERATURE = (
    "The relaxed guides' temperature is fixed at construction (a reassigned value would "
    "be ignored by a jitted update): pass a schedule, AutoRelaxed(model, "
    "temperature=numpyro_concrete.exponential_decay(...)), and feed the step with "
    "svi.update(state, *args, relax_step=step)."
)

_NO_QUANTILES = (
    "Relaxed sites have no quantiles that describe the discrete posterior (their "
    "log-space values depend on the temperature, and a point of the log-simplex has no "
    "per-coordinate quantiles in closed form): read guide.probs(params) for the "
    "posterior probabilities, or draw hard samples with sample_posterior."
)


class AutoRelaxed(AutoGuideList):
    """``AutoRelaxedDiscrete`` for the relaxed sites and ``AutoNormal`` for the others.

    Usage::

        model = relax(discrete_model, temperature=0.5)
        guide = AutoRelaxed(model)
        svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
        result = svi.run(rng_key, 1000, data)
        guide.probs(result.params)  # {"z": learned probabilities}

    :param model: a relaxed model (``relax(model)``).
    :param temperature: posterior temperature of the relaxed sites (default 2/3), or a
        schedule ``step -> lambda`` read at the ``relax_step`` keyword.
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param init_loc_fn: initialisation of the continuous sites, as for ``AutoNormal``.
    :param continuous_init_scale: ``AutoNormal``'s ``init_scale``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: Temperature = 2 / 3,
        init_scale: float = 0.01,
        *,
        init_loc_fn=init_to_uniform,
        continuous_init_scale: float = 0.1,
        create_plates=None,
    ) -> None:
        super().__init__(model, create_plates=create_plates)
        self.append(
            AutoRelaxedDiscrete(block(model, hide_fn=_is_other_site), temperature, init_scale)
        )
        self.append(
            AutoNormal(
                block(model, hide_fn=_is_relaxed_or_deterministic_site),
                init_loc_fn=init_loc_fn,
                init_scale=continuous_init_scale,
            )
        )

    def _setup_prototype(self, *args, **kwargs) -> None:
        _check_no_discrete_sites(type(self).__name__, self.model, *args, **kwargs)
        with _finite_logits_in(self):
            super()._setup_prototype(*args, **kwargs)

    @property
    def temperature(self) -> Temperature:
        """The posterior temperature or its schedule (fixed at construction)."""
        return self[0].temperature

    @temperature.setter
    def temperature(self, value: Temperature) -> None:
        raise AttributeError(_READ_ONLY_TEMPERATURE)

    def probs(self, params: dict, *args, **kwargs) -> dict[str, Array]:
        """The learned discrete probabilities of each relaxed site (see ``AutoRelaxedDiscrete``)."""
        return self[0].probs(params, *args, **kwargs)

    def _parts_with_sites(self) -> list[AutoGuide]:
        """The parts that describe latent sites.  A model whose latent sites are all
        relaxed leaves the ``AutoNormal`` part empty, and NumPyro's ``AutoNormal`` fails
        on ``median`` and ``sample_posterior`` without sites (``IndexError``)."""
        return [
            part
            for part in self
            if part.prototype_trace is None
            or any(
                s["type"] == "sample" and not s["is_observed"]
                for s in part.prototype_trace.values()
            )
        ]

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs):
        """Posterior samples of every latent site: the relaxed ones in the discrete
        model's representation (see ``AutoRelaxedDiscrete.sample_posterior``)."""
        return {
            name: value
            for part in self._parts_with_sites()
            for name, value in part.sample_posterior(
                rng_key, params, *args, sample_shape=sample_shape, **kwargs
            ).items()
        }

    def median(self, params: dict) -> dict[str, Array]:
        """The median of every latent site (see ``AutoRelaxedDiscrete.median``)."""
        return {k: v for part in self._parts_with_sites() for k, v in part.median(params).items()}
