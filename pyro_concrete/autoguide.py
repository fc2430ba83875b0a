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

from contextlib import ExitStack
from operator import attrgetter

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoGuide, AutoGuideList, AutoNormal
from pyro.infer.autoguide.initialization import init_to_feasible
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from pyro.poutine import block
from torch.distributions import constraints

from .distributions import ExpConcrete, LogitBinaryConcrete
from .distributions.wrappers import base_of
from .relax import _RELAXATIONS, RELAX_STEP, Temperature, temperature_at

__all__ = ["AutoRelaxed", "AutoRelaxedDiscrete", "is_relaxed_site"]

_FAMILIES = (ExpConcrete, LogitBinaryConcrete)


def is_relaxed_site(msg: dict) -> bool:
    """Whether a sample site is a latent log-space relaxed discrete site."""
    return (
        msg["type"] == "sample" and not msg["is_observed"] and type(base_of(msg["fn"])) in _FAMILIES
    )


def _check_no_discrete_sites(owner: str, trace: poutine.Trace) -> None:
    """Raise, naming the site and what to do, if a latent site of ``trace`` is discrete."""
    for name, site in trace.iter_stochastic_nodes():
        if site["fn"].support.is_discrete:
            raise ValueError(_discrete_site_message(owner, name, base_of(site["fn"])))


def _discrete_site_message(owner: str, name: str, base: dist.TorchDistribution) -> str:
    family = type(base).__name__
    if type(base) in _RELAXATIONS:
        return (
            f"{owner}: site {name!r} is a discrete {family} site. Relax the model first, "
            f"{owner}(pyro_concrete.relax(model)), with the site among relax's sites= if given."
        )
    return (
        f"{owner}: site {name!r} is a {family}, which relax() leaves discrete: only "
        "Bernoulli and OneHotCategorical sites relax (a Categorical one as "
        "OneHotCategorical read with select). Sum it out (enumerate it with "
        "TraceEnum_ELBO, or by hand), or make it continuous; relax(model, sites=[...]) "
        "leaves a listed site discrete, and the relaxed autoguides cannot guide it."
    )


_READ_ONLY_TEMPERATURE = (
    "The relaxed guides' temperature is fixed at construction, as in NumPyro (where a "
    "reassigned value would be ignored by a jitted update): pass a schedule, "
    "AutoRelaxed(model, temperature=pyro_concrete.exponential_decay(...)), and feed the "
    "step with svi.step(*args, relax_step=step)."
)

_NO_QUANTILES = (
    "Relaxed sites have no quantiles that describe the discrete posterior (their "
    "log-space values depend on the temperature, and a point of the log-simplex has no "
    "per-coordinate quantiles in closed form): read guide.probs() for the posterior "
    "probabilities, or draw hard samples with Predictive(model, guide=discretize(guide))."
)


def _ruled_out(owner: str, name: str, site: dict) -> torch.Tensor | None:
    """Where the prior of relaxed categorical site ``name`` has a ``-inf`` logit (a
    category the model rules out), reduced to size 1 along every dimension where it is
    constant; ``None`` when it rules nothing out.  The guide gives those categories a
    ``-inf`` logit too: a guide sample there would have prior density 0."""
    fn, base = site["fn"], base_of(site["fn"])
    mask = torch.isneginf(base.logits) if isinstance(base, ExpConcrete) else None
    if mask is None or not mask.any():
        return None
    for dim in range(mask.dim() - 1):
        if torch.equal(mask.all(dim, keepdim=True), mask.any(dim, keepdim=True)):
            mask = mask.any(dim, keepdim=True)
    for frame in site["cond_indep_stack"]:
        dim = frame.dim - fn.event_dim
        varies = -dim <= mask.dim() and mask.shape[dim] > 1
        if varies and frame.full_size not in (None, frame.size):
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
    pathwise gradients, with no enumeration and no score function.

    :param model: a model whose latent sites are all relaxed (``relax(model)``).
    :param temperature: the posterior temperature lambda, or a schedule
        ``step -> lambda`` evaluated at the ``relax_step`` keyword of each call.
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: Temperature = 2 / 3,
        init_scale: float = 0.01,
        *,
        create_plates=None,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, got {init_scale}.")
        self._temperature = temperature
        self._init_scale = init_scale
        super().__init__(model, create_plates=create_plates)

    @property
    def temperature(self) -> Temperature:
        """The posterior temperature or its schedule (fixed at construction)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: Temperature) -> None:
        raise AttributeError(_READ_ONLY_TEMPERATURE)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        _check_no_discrete_sites(type(self).__name__, self.prototype_trace)
        self.log_alpha = PyroModule()
        self._families: dict[str, type] = {}
        self._ruled_out: dict[str, torch.Tensor | None] = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
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
                full_size = frame.full_size or frame.size
                shape[frame.dim - fn.event_dim] = full_size
            init = torch.randn(shape, dtype=site["value"].dtype) * self._init_scale
            deep_setattr(self.log_alpha, name, PyroParam(init, constraints.real, fn.event_dim))
            self._families[name] = family
            self._ruled_out[name] = _ruled_out(type(self).__name__, name, site)

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        temperature = temperature_at(self._temperature, kwargs.get(RELAX_STEP, 0))
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            with ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                fn = self._families[name](temperature, logits=self._log_alpha(name))
                fn = fn.to_event(site["fn"].event_dim - fn.event_dim)
                result[name] = pyro.sample(name, fn)
        return result

    def _log_alpha(self, name: str) -> torch.Tensor:
        """The guide's logits of site ``name``: ``-inf`` where the prior's are."""
        log_alpha, mask = attrgetter(name)(self.log_alpha), self._ruled_out[name]
        return log_alpha if mask is None else log_alpha.masked_fill(mask, -torch.inf)

    @torch.no_grad()
    def probs(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The learned discrete probabilities of each relaxed site: ``sigmoid(log_alpha)``
        (the probability of 1) for a Bernoulli site, ``softmax(log_alpha)`` for a
        categorical one.  A guide that has not run yet (say, rebuilt to read a saved
        parameter store) traces the model once, with ``*args, **kwargs``."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return {
            name: family(1.0, logits=self._log_alpha(name)).probs.detach()
            for name, family in self._families.items()
        }

    @torch.no_grad()
    def median(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The noise-free relaxed value of each site in log space at the temperature of
        the ``relax_step`` keyword: ``log alpha / lambda`` (the logistic's median) or
        ``log_softmax(log alpha / lambda)``."""
        temperature = temperature_at(self._temperature, kwargs.get(RELAX_STEP, 0))
        medians = {}
        for name, family in self._families.items():
            y = self._log_alpha(name) / torch.as_tensor(temperature)
            medians[name] = y.log_softmax(-1) if family is ExpConcrete else y
        return medians

    def quantiles(self, quantiles, *args, **kwargs) -> dict[str, torch.Tensor]:
        raise NotImplementedError(_NO_QUANTILES)


class AutoRelaxed(AutoGuideList):
    """``AutoRelaxedDiscrete`` for the relaxed sites and ``AutoNormal`` for the others.

    Usage::

        model = relax(discrete_model, temperature=0.5)
        guide = AutoRelaxed(model)
        svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
        ...
        guide.probs()  # {"z": learned probabilities}

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
        init_loc_fn=init_to_feasible,
        continuous_init_scale: float = 0.1,
        create_plates=None,
    ) -> None:
        super().__init__(model, create_plates=create_plates)
        self.append(
            AutoRelaxedDiscrete(block(model, expose_fn=is_relaxed_site), temperature, init_scale)
        )
        self.append(
            AutoNormal(
                block(model, hide_fn=is_relaxed_site),
                init_loc_fn=init_loc_fn,
                init_scale=continuous_init_scale,
            )
        )

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        _check_no_discrete_sites(type(self).__name__, self.prototype_trace)

    @property
    def temperature(self) -> Temperature:
        """The posterior temperature or its schedule (fixed at construction)."""
        return self[0].temperature

    @temperature.setter
    def temperature(self, value: Temperature) -> None:
        raise AttributeError(_READ_ONLY_TEMPERATURE)

    def probs(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The learned discrete probabilities of each relaxed site (see ``AutoRelaxedDiscrete``)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return self[0].probs(*args, **kwargs)
