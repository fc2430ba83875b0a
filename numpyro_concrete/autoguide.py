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

import jax
import jax.numpy as jnp
import numpyro
from jax import Array
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.handlers import block, seed
from numpyro.infer.autoguide import AutoGuide, AutoGuideList, AutoNormal
from numpyro.infer.initialization import init_to_uniform

from .distributions import ExpConcrete, LogitBinaryConcrete
from .relax import base_of

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


class AutoRelaxedDiscrete(AutoGuide):
    """A guide ``q(y_z) = Family(lambda, log_alpha_z)`` for each relaxed site ``z``.

    ``Family`` is the site's own log-space family (``LogitBinaryConcrete`` or
    ``ExpConcrete``), so the ELBO uses the closed-form densities in log space and
    pathwise gradients, with no enumeration and no score function.  The parameter of
    site ``z`` is ``f"{z}_{prefix}_log_alpha"``.

    :param model: a model whose latent sites are all relaxed (``relax(model)``).
    :param temperature: the posterior temperature lambda.
    :param init_scale: ``log_alpha`` starts at ``Normal(0, init_scale)``.
    :param prefix: as for ``AutoNormal``.
    :param create_plates: as for ``AutoNormal``.
    """

    def __init__(
        self,
        model,
        temperature: ArrayLike = 2 / 3,
        init_scale: float = 0.01,
        *,
        prefix: str = "auto",
        create_plates=None,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, got {init_scale}.")
        self.temperature = temperature
        self._init_scale = init_scale
        super().__init__(model, prefix=prefix, create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs) -> None:
        # A plain trace is all this guide needs (no init values in unconstrained space, so
        # no initialize_model, which would also reject the discrete sites it must report).
        with block():
            self.prototype_trace = handlers.trace(seed(self.model, numpyro.prng_key())).get_trace(
                *args, **kwargs
            )
        self._families: dict[str, type] = {}
        self._shapes: dict[str, tuple[tuple[int, ...], int]] = {}
        for name, site in self.prototype_trace.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            family = type(base_of(site["fn"]))
            if family not in _FAMILIES:
                raise ValueError(
                    f"{type(self).__name__}: site {name!r} is a {family.__name__}, not a "
                    "relaxed discrete site. Relax the model first (numpyro_concrete.relax), "
                    "and use AutoRelaxed for models that also have continuous latent sites."
                )
            fn = site["fn"]
            shape = list(fn.batch_shape + fn.event_shape)
            for frame in site["cond_indep_stack"]:
                self._prototype_frames[frame.name] = frame
                full_size = self.prototype_trace[frame.name]["args"][0]
                self._prototype_frame_full_sizes[frame.name] = full_size
                shape[frame.dim - fn.event_dim] = full_size
            self._families[name] = family
            self._shapes[name] = (tuple(shape), fn.event_dim)

    def _param_name(self, name: str) -> str:
        return f"{name}_{self.prefix}_log_alpha"

    def _guide_fn(self, name: str, site_event_dim: int, log_alpha: Array):
        fn = self._families[name](self.temperature, logits=log_alpha)
        return fn.to_event(site_event_dim - fn.event_dim)

    def __call__(self, *args, **kwargs) -> dict[str, Array]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, (shape, event_dim) in self._shapes.items():
            with ExitStack() as stack:
                for frame in self.prototype_trace[name]["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                log_alpha = numpyro.param(
                    self._param_name(name),
                    lambda key, shape=shape: self._init_scale * jax.random.normal(key, shape),
                    event_dim=event_dim,
                )
                result[name] = numpyro.sample(name, self._guide_fn(name, event_dim, log_alpha))
        return result

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs):
        with seed(rng_seed=rng_key):
            return {
                name: numpyro.sample(
                    name,
                    self._guide_fn(name, event_dim, params[self._param_name(name)]).expand_by(
                        sample_shape
                    ),
                )
                for name, (_, event_dim) in self._shapes.items()
            }

    def probs(self, params: dict) -> dict[str, Array]:
        """The learned discrete probabilities of each relaxed site: ``sigmoid(log_alpha)``
        (the probability of 1) for a Bernoulli site, ``softmax(log_alpha)`` for a
        categorical one."""
        return {
            name: family(1.0, logits=params[self._param_name(name)]).probs
            for name, family in self._families.items()
        }

    def median(self, params: dict) -> dict[str, Array]:
        """The noise-free relaxed value of each site in log space, ``log alpha / lambda``
        (the logistic's median) or ``log_softmax(log alpha / lambda)``."""
        medians = {}
        for name, family in self._families.items():
            y = params[self._param_name(name)] / jnp.asarray(self.temperature)
            medians[name] = jax.nn.log_softmax(y, -1) if family is ExpConcrete else y
        return medians


class AutoRelaxed(AutoGuideList):
    """``AutoRelaxedDiscrete`` for the relaxed sites and ``AutoNormal`` for the others.

    Usage::

        model = relax(discrete_model, temperature=0.5)
        guide = AutoRelaxed(model)
        svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
        result = svi.run(rng_key, 1000, data)
        guide.probs(result.params)  # {"z": learned probabilities}

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
        temperature: ArrayLike = 2 / 3,
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
        with block():
            trace = handlers.trace(seed(self.model, numpyro.prng_key())).get_trace(*args, **kwargs)
        for name, site in trace.items():
            if (
                site["type"] == "sample"
                and not site["is_observed"]
                and site["fn"].support.is_discrete
            ):
                raise ValueError(
                    f"AutoRelaxed: site {name!r} is a discrete "
                    f"{type(base_of(site['fn'])).__name__} site. Relax the model first: "
                    "AutoRelaxed(numpyro_concrete.relax(model))."
                )
        super()._setup_prototype(*args, **kwargs)

    @property
    def temperature(self) -> ArrayLike:
        return self[0].temperature

    @temperature.setter
    def temperature(self, value: ArrayLike) -> None:
        self[0].temperature = value

    def probs(self, params: dict) -> dict[str, Array]:
        """The learned discrete probabilities of each relaxed site (see ``AutoRelaxedDiscrete``)."""
        return self[0].probs(params)
