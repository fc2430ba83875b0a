"""RELAX: REBAR with a learned control variate (Grathwohl, Choi, Wu, Roeder & Duvenaud
2018).  The estimator, not the ``relax()`` handler of ``pyro_concrete.relax``, which
relaxes a model's discrete sites for training the relaxed model."""

from collections.abc import Callable

import torch
from torch.distributions import constraints

from ..plates import elements
from .rebar import ControlVariateELBO
from .traces import DiscreteSite

__all__ = ["RelaxELBO"]

ControlVariate = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class RelaxELBO(ControlVariateELBO):
    r"""The discrete ELBO with the RELAX gradient (Grathwohl et al. 2018, Eq. 5):

    .. math::
        g = [f(b) - c_\phi(\tilde z)] \nabla \log q(b) + \nabla f(b)
            + \nabla c_\phi(z) - \nabla c_\phi(\tilde z),

    unbiased for any ``c_phi``, whose parameters ``phi`` (and the temperature) descend the
    estimator's variance.  ``c_phi`` receives the relaxed values ``sigma_lam(z)`` of the
    guide's discrete sites (a dict by site name) and ``f`` at that relaxed point, per
    element of the plates enclosing every site, and returns a tensor of that shape.  Its
    parameters must be ``pyro.param`` / ``pyro.module`` sites; a torch optimiser (and
    ``LightningSVI``) trains those of a module it is given, e.g. ``LightningSVI(loss_fn,
    network)``.  The default, ``c_phi = eta f(sigma_lam(z)) + sum_s <w_s, sigma_lam(z_s)>``,
    is REBAR's control variate plus a learned linear term, with ``pyro.param`` sites
    ``"relax_eta"`` and ``"{site}_relax_weight"``; the temperatures are
    ``"{site}_relax_temperature"``: parameters of :attr:`tuned`.

    :param control_variate: ``c_phi(values, relaxed_elbo)``, or ``None`` for the default.
    :param num_particles: particles averaged.
    :param temperature: the initial temperature ``lam``.
    :param vectorize_particles: draw the particles in one vectorised pass, and evaluate
        the control variate at ``z`` and ``z~`` in one relaxed pass (a plate of size 2 left
        of the particles'), which needs model, guide and control variate to broadcast.
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
        vectorize_particles: bool = False,
        tune_on: str = "logits",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"RelaxELBO: temperature must be > 0, got {temperature!r}.")
        super().__init__(num_particles, vectorize_particles, tune_on)
        self.control_variate = control_variate
        self.temperature = float(temperature)

    def _setup(self, sites: dict[str, DiscreteSite]) -> tuple[dict, dict]:
        temperature = {
            k: self.tuned(
                f"{k}_relax_temperature", torch.tensor(self.temperature), constraints.positive
            )
            for k in sites
        }
        if self.control_variate is not None:
            return temperature, {}
        params = {"relax_eta": self.tuned("relax_eta", torch.tensor(1.0))}
        for k, site in sites.items():  # a weight per event element of the relaxed value
            event = site.z.shape[site.z.dim() - site.event_dim :]
            name = f"{k}_relax_weight"
            params[name] = self.tuned(name, site.z.new_zeros(event))
        return temperature, params

    def _control_variate(
        self,
        relaxed_elbo: torch.Tensor,
        values: dict[str, torch.Tensor],
        dims: set,
        ndim: int,
        params: dict,
    ) -> torch.Tensor:
        if self.control_variate is not None:
            return self.control_variate(values, relaxed_elbo)
        c = params["relax_eta"] * relaxed_elbo
        for k, v in values.items():
            w = params[f"{k}_relax_weight"]
            linear = (v * w).sum(list(range(-w.dim(), 0))) if w.dim() else v * w
            c = c + elements(linear, dims, ndim)
        return c
