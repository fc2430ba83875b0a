"""REBAR: the score function with the Concrete relaxation as control variate (Tucker,
Mnih, Maddison, Lawson & Sohl-Dickstein 2017)."""

from collections.abc import Callable

import pyro
import torch
from torch.distributions import constraints

from .conditional import bernoulli_conditional, categorical_conditional
from .elbo import DiscreteELBO
from .traces import (
    DiscreteSampler,
    DiscreteSite,
    RelaxedSampler,
    costs,
    discrete_pass,
    factor_dims,
    relaxed_pass,
)

__all__ = ["RebarELBO"]


def conditional_point(site: DiscreteSite) -> torch.Tensor:
    """``z~ ~ p(z | b)`` for a site of the discrete pass (``conditional.py``)."""
    if site.kind == "bernoulli":
        return bernoulli_conditional(site.logits, site.value)
    b = site.value
    if site.kind == "categorical":
        b = torch.nn.functional.one_hot(b, site.logits.size(-1)).to(site.logits.dtype)
    return categorical_conditional(site.logits, b)


class ControlVariateELBO(DiscreteELBO):
    r"""The score-function gradient of the discrete ELBO with a control variate ``c`` of
    the relaxed point, corrected to stay unbiased (Tucker et al. 2017, Eq. 6; Grathwohl et
    al. 2018, Eq. 5):

    .. math::
        g = [f(b) - c(\tilde z)] \nabla \log q(b) + \nabla f(b) + \nabla c(z)
            - \nabla c(\tilde z),

    ``z`` the continuous sample that ``b = H(z)`` rounds, ``z~ ~ p(z | b)`` reparameterised
    with ``b`` fixed.  ``nabla f(b)`` leaves out the zero-mean score of ``log q(b)``; model
    parameters get ``nabla f(b)`` alone (the correction has zero mean for them).  With
    ``tune``, the control variate's own quantities descend the gradient of the estimate's
    second moment ``sum g^2`` over the guide's parameters, which is the variance up to a
    constant (the mean does not depend on them).
    """

    tune: bool

    def _setup(self, sites: dict[str, DiscreteSite]) -> dict:
        """The temperature of each site."""
        raise NotImplementedError

    def _control_variate(
        self, relaxed_elbo: torch.Tensor, values: dict[str, torch.Tensor], dims: set, ndim: int
    ) -> torch.Tensor:
        """``c`` per element, from ``f`` at the relaxed point and the relaxed values."""
        raise NotImplementedError

    def _tuned(self) -> list[torch.Tensor]:
        """The unconstrained tensors of the tuned quantities."""
        raise NotImplementedError

    def _terms(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple:
        name = type(self).__name__
        hard = DiscreteSampler(estimator=name)
        model_trace, guide_trace = discrete_pass(model, guide, args, kwargs, hard)
        dims, ndim = factor_dims(model_trace, guide_trace)
        cost = costs(model_trace, guide_trace, set(hard.sites), dims, ndim)
        temperature = self._setup(hard.sites)

        def control_variate(points: dict[str, torch.Tensor]) -> torch.Tensor:
            sampler = RelaxedSampler(hard.sites, points, temperature)
            traces = relaxed_pass(model, guide, args, kwargs, sampler, name, guide_trace)
            relaxed = costs(*traces, set(hard.sites), dims, ndim)
            return self._control_variate(relaxed.value, sampler.values, dims, ndim)

        at_z = control_variate({k: s.z for k, s in hard.sites.items()})
        at_conditional = control_variate({k: conditional_point(s) for k, s in hard.sites.items()})
        score = sum(cost.score.values(), torch.zeros(()))
        surrogate = cost.value.detach() * score + cost.direct + at_z - at_conditional
        # -c(z~) d log q, with c(z~) differentiable in its own quantities but not in the
        # guide's parameters: the second factor is zero in value.
        surrogate = surrogate + at_conditional * (score.detach() - score)
        params = _param_tensors(guide_trace), _param_tensors(model_trace, guide_trace)
        return cost.value.sum(), surrogate.sum(), cost.direct.sum(), params

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._terms(model, guide, args, kwargs)[:2]

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Fills ``.grad``: the guide's parameters with ``-g``, the model's with
        ``-nabla f(b)``, the tuned quantities with the gradient of ``sum g^2``."""
        value = 0.0
        for model_k, guide_k in self._passes(model, guide, args, kwargs):
            estimate, surrogate, direct, (guide_params, model_params) = self._terms(
                model_k, guide_k, args, kwargs
            )
            value += estimate.item() / self.num_particles
            guide_grads = torch.autograd.grad(
                -surrogate / self.num_particles,
                guide_params,
                retain_graph=True,
                create_graph=self.tune,
                allow_unused=True,
            )
            model_grads = torch.autograd.grad(
                -direct / self.num_particles,
                model_params,
                retain_graph=self.tune,
                allow_unused=True,
            )
            grads = list(zip(guide_params, guide_grads, strict=True)) + list(
                zip(model_params, model_grads, strict=True)
            )
            if self.tune:
                tuned = self._tuned()
                moment = sum((g**2).sum() for g in guide_grads if g is not None)
                tuned_grads = torch.autograd.grad(moment, tuned, allow_unused=True)
                grads += list(zip(tuned, tuned_grads, strict=True))
            for param, grad in grads:
                if grad is not None:
                    grad = grad.detach()
                    param.grad = grad if param.grad is None else param.grad + grad
        return -value


def _param_tensors(trace, exclude=None) -> list[torch.Tensor]:
    """The unconstrained tensors of the trace's ``param`` sites (not in ``exclude``)."""
    names = set() if exclude is None else set(exclude.nodes)
    return [
        site["value"].unconstrained()
        for name, site in trace.nodes.items()
        if site["type"] == "param" and name not in names
    ]


class RebarELBO(ControlVariateELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the REBAR
    gradient (Tucker et al. 2017, Eq. 6): :class:`ControlVariateELBO` with
    ``c = eta f(sigma_lam(.))``, the ELBO's integrand at the relaxed point
    ``sigma_lam(z) = sigmoid(z / lam)`` (Bernoulli) / ``softmax(z / lam)`` (categorical), the
    discrete log-masses continued there.  Unbiased for any ``eta`` and ``lam``.  One
    ``eta`` scales the whole control variate, which keeps the estimator exact for a guide
    whose sites read each other's values; each site has its own ``lam``.

    The model is evaluated at relaxed values of its discrete sites: it must accept a point
    of (0, 1) for a ``Bernoulli`` and of the simplex for a categorical (read a
    ``Categorical`` with :func:`~pyro_concrete.select`); otherwise ``ValueError``.

    :param num_particles: particles averaged.
    :param temperature: the relaxation's temperature ``lam`` (its initial value if tuned).
    :param eta: the control variate's scale (its initial value if tuned).
    :param tune: learn ``eta`` and ``lam``, as ``pyro.param`` sites ``"rebar_eta"`` and
        ``"{site}_rebar_temperature"``, by descending the estimator's variance; SVI's
        optimiser updates them.
    :param vectorize_particles: draw the particles in one vectorised pass.
    """

    def __init__(
        self,
        num_particles: int = 1,
        temperature: float = 0.5,
        eta: float = 1.0,
        tune: bool = True,
        vectorize_particles: bool = False,
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"RebarELBO: temperature must be > 0, got {temperature!r}.")
        super().__init__(num_particles, vectorize_particles)
        self.temperature, self.eta, self.tune = float(temperature), float(eta), tune
        self._names: list[str] = []

    def _setup(self, sites: dict[str, DiscreteSite]) -> dict:
        if not self.tune:
            return dict.fromkeys(sites, self.temperature)
        self._names = [f"{k}_rebar_temperature" for k in sites] + ["rebar_eta"]
        return {
            k: pyro.param(
                f"{k}_rebar_temperature",
                lambda: torch.tensor(self.temperature),
                constraint=constraints.positive,
            )
            for k in sites
        }

    def _control_variate(
        self, relaxed_elbo: torch.Tensor, values: dict[str, torch.Tensor], dims: set, ndim: int
    ) -> torch.Tensor:
        eta = pyro.param("rebar_eta", lambda: torch.tensor(self.eta)) if self.tune else self.eta
        return eta * relaxed_elbo

    def _tuned(self) -> list[torch.Tensor]:
        return [pyro.param(name).unconstrained() for name in self._names]
