"""Enumeration-free relaxed autoguides (design.md section 4).

``AutoRelaxedDiscrete`` gives every relaxed site (a ``LogitBinaryConcrete`` or
``ExpConcrete`` site, as ``relax`` makes them) a guide of the same log-space family with
a learnable ``log_alpha``, initialised from ``Normal(0, init_scale)`` as the seed text
suggests, at the posterior temperature (2/3 by default, the paper's choice).
``AutoRelaxed`` pairs it with an ``AutoNormal`` for the continuous sites.  Both follow
``AutoNormal``: one parameter per site, full size along subsampled plates, indexed by
the plates at run time.
"""

from contextlib import ExitStack
from operator import attrgetter

import pyro
import torch
from pyro.infer.autoguide import AutoGuide, AutoGuideList, AutoNormal
from pyro.infer.autoguide.initialization import init_to_feasible
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from pyro.poutine import block
from torch.distributions import constraints

from .distributions import ExpConcrete, LogitBinaryConcrete
from .relax import base_of

__all__ = ["AutoRelaxed", "AutoRelaxedDiscrete", "is_relaxed_site"]

_FAMILIES = (ExpConcrete, LogitBinaryConcrete)


def is_relaxed_site(msg: dict) -> bool:
    """Whether a sample site is a latent log-space relaxed discrete site."""
    return (
        msg["type"] == "sample" and not msg["is_observed"] and type(base_of(msg["fn"])) in _FAMILIES
    )


class AutoRelaxedDiscrete(AutoGuide):
    """A guide ``q(y_z) = Family(lambda, log_alpha_z)`` for each relaxed site ``z``.

    ``Family`` is the site's own log-space family (``LogitBinaryConcrete`` or
    ``ExpConcrete``), so the ELBO uses the closed-form densities in log space and
    pathwise gradients, with no enumeration and no score function.

    :param model: a model whose latent sites are all relaxed (``relax(model)``).
    :param temperature: the posterior temperature lambda; may be reassigned between
        steps (``guide.temperature = schedule(step)``).
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: float | torch.Tensor = 2 / 3,
        init_scale: float = 0.01,
        *,
        create_plates=None,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, got {init_scale}.")
        self.temperature = temperature
        self._init_scale = init_scale
        super().__init__(model, create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.log_alpha = PyroModule()
        self._families: dict[str, type] = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            family = type(base_of(site["fn"]))
            if family not in _FAMILIES:
                raise ValueError(
                    f"{type(self).__name__}: site {name!r} is a {family.__name__}, not a "
                    "relaxed discrete site. Relax the model first (pyro_concrete.relax), and "
                    "use AutoRelaxed for models that also have continuous latent sites."
                )
            fn = site["fn"]
            shape = list(fn.batch_shape + fn.event_shape)
            for frame in site["cond_indep_stack"]:
                full_size = frame.full_size or frame.size
                shape[frame.dim - fn.event_dim] = full_size
            init = torch.randn(shape, dtype=site["value"].dtype) * self._init_scale
            deep_setattr(self.log_alpha, name, PyroParam(init, constraints.real, fn.event_dim))
            self._families[name] = family

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            with ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                fn = self._families[name](self.temperature, logits=self._log_alpha(name))
                fn = fn.to_event(site["fn"].event_dim - fn.event_dim)
                result[name] = pyro.sample(name, fn)
        return result

    def _log_alpha(self, name: str) -> torch.Tensor:
        return attrgetter(name)(self.log_alpha)

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        """The learned discrete probabilities of each relaxed site: ``sigmoid(log_alpha)``
        (the probability of 1) for a Bernoulli site, ``softmax(log_alpha)`` for a
        categorical one."""
        return {
            name: family(1.0, logits=self._log_alpha(name)).probs.detach()
            for name, family in self._families.items()
        }

    @torch.no_grad()
    def median(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The noise-free relaxed value of each site in log space, ``log alpha / lambda``
        (the logistic's median) or ``log_softmax(log alpha / lambda)``."""
        medians = {}
        for name, family in self._families.items():
            y = self._log_alpha(name) / torch.as_tensor(self.temperature)
            medians[name] = y.log_softmax(-1) if family is ExpConcrete else y
        return medians


class AutoRelaxed(AutoGuideList):
    """``AutoRelaxedDiscrete`` for the relaxed sites and ``AutoNormal`` for the others.

    Usage::

        model = relax(discrete_model, temperature=0.5)
        guide = AutoRelaxed(model)
        svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
        ...
        guide.probs()  # {"z": learned probabilities}

    :param model: a relaxed model (``relax(model)``).
    :param temperature: posterior temperature of the relaxed sites (default 2/3).
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param init_loc_fn: initialisation of the continuous sites, as for ``AutoNormal``.
    :param continuous_init_scale: ``AutoNormal``'s ``init_scale``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: float | torch.Tensor = 2 / 3,
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
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            if site["fn"].support.is_discrete:
                raise ValueError(
                    f"AutoRelaxed: site {name!r} is a discrete "
                    f"{type(base_of(site['fn'])).__name__} site. Relax the model first: "
                    "AutoRelaxed(pyro_concrete.relax(model))."
                )

    @property
    def temperature(self) -> float | torch.Tensor:
        return self[0].temperature

    @temperature.setter
    def temperature(self, value: float | torch.Tensor) -> None:
        self[0].temperature = value

    def probs(self) -> dict[str, torch.Tensor]:
        """The learned discrete probabilities of each relaxed site (see ``AutoRelaxedDiscrete``)."""
        return self[0].probs()
