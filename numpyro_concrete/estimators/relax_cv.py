"""RELAX: REBAR with a learned control variate (Grathwohl, Choi, Wu, Roeder & Duvenaud
2018).  The estimator, not the ``relax()`` handler of ``numpyro_concrete.relax``, which
relaxes a model's discrete sites for training the relaxed model."""

from collections.abc import Callable

import jax.numpy as jnp
import numpyro
from jax import Array
from numpyro.distributions import constraints
from numpyro.handlers import substitute

from ..plates import elements
from .rebar import ControlVariateELBO
from .traces import DiscreteSite

__all__ = ["RelaxELBO"]

ControlVariate = Callable[[dict[str, Array], Array], Array]


class RelaxELBO(ControlVariateELBO):
    r"""The discrete ELBO with the RELAX gradient (Grathwohl et al. 2018, Eq. 5):

    .. math::
        g = [f(b) - c_\phi(\tilde z)] \nabla \log q(b) + \nabla f(b)
            + \nabla c_\phi(z) - \nabla c_\phi(\tilde z),

    unbiased for any ``c_phi``, whose parameters ``phi`` (and the temperature) descend the
    estimator's variance.  ``c_phi`` receives the relaxed values ``sigma_lam(z)`` of the
    guide's discrete sites (a dict by site name) and ``f`` at that relaxed point, per
    element of the plates enclosing every site, and returns an array of that shape.  Its
    parameters must be ``numpyro.param`` sites.  The default,
    ``c_phi = eta f(sigma_lam(z)) + sum_s <w_s, sigma_lam(z_s)>``, is REBAR's control
    variate plus a learned linear term, with ``numpyro.param`` sites ``"relax_eta"`` and
    ``"{site}_relax_weight"``; the temperatures are ``"{site}_relax_temperature"``.  All
    are declared by the guide that :meth:`tunable` returns: build
    ``SVI(model, loss.tunable(guide), optim, loss)``.

    :param control_variate: ``c_phi(values, relaxed_elbo)``, or ``None`` for the default.
    :param num_particles: particles averaged.
    :param temperature: the initial temperature ``lam``.
    :param vectorize_particles: draw the particles with ``jax.vmap`` (else ``lax.map``).
    :param tune_on: descend the variance of the estimate for the ``"logits"`` of the
        guide's discrete sites (the default: cheaper, and as low a variance after tuning on
        the sigmoid belief net) or for its ``"parameters"``.
    """

    tune = True

    def __init__(
        self,
        control_variate: ControlVariate | None = None,
        num_particles: int = 1,
        temperature: float = 0.5,
        vectorize_particles: bool = True,
        tune_on: str = "logits",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"RelaxELBO: temperature must be > 0, got {temperature!r}.")
        super().__init__(num_particles, vectorize_particles, tune_on)
        self.control_variate = control_variate
        self.temperature = float(temperature)
        self._events: dict[str, tuple[int, ...]] = {}

    def _declare(self, sites: dict[str, tuple[int, ...]]) -> None:
        self._events = sites
        for k in sites:
            numpyro.param(
                f"{k}_relax_temperature",
                jnp.asarray(self.temperature),
                constraint=constraints.positive,
            )
        if self.control_variate is None:
            numpyro.param("relax_eta", jnp.asarray(1.0))
            for k, event in sites.items():
                numpyro.param(f"{k}_relax_weight", jnp.zeros(event))
        else:
            self.control_variate({k: jnp.zeros(e) for k, e in sites.items()}, jnp.zeros(()))

    def _setup(self, params: dict, sites: dict[str, DiscreteSite]) -> dict:
        temperature = {
            k: self._tuned(params, f"{k}_relax_temperature", self.temperature) for k in sites
        }
        return temperature

    def _default(self, values: dict[str, Array], relaxed_elbo: Array) -> Array:
        c = numpyro.param("relax_eta", jnp.asarray(1.0)) * relaxed_elbo
        for k, v in values.items():
            event = self._events[k]
            w = numpyro.param(f"{k}_relax_weight", jnp.zeros(event))
            linear = (v * w).sum(tuple(range(-len(event), 0))) if event else v * w
            c = c + elements(linear, self._dims, self._ndim)
        return c

    def _control_variate(
        self, relaxed_elbo: Array, values: dict[str, Array], dims: set, ndim: int, params: dict
    ) -> Array:
        self._dims, self._ndim = dims, ndim
        cv = self._default if self.control_variate is None else self.control_variate
        with substitute(data=params):
            return cv(values, relaxed_elbo)
