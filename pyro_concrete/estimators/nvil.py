"""NVIL: neural variational inference and learning (Mnih & Gregor 2014).

The score-function estimator of the gradient of the **discrete** ELBO
``L = E_q[l]``, ``l = log p(x, z) - log q(z | x)``, with the paper's three variance
reductions (Sec. 3.1-3.3):

- an input-dependent baseline ``b_psi(x)`` (a one-hidden-layer tanh network of the
  model's input) and a constant baseline ``c``, the running mean of ``l - b_psi(x)``;
- variance normalisation: the centred signal is divided by ``max(1, sigma)``, ``sigma^2``
  the running variance of ``l - b_psi(x)``;
- ``b_psi`` trained by squared error, ``min_psi E[(l - c - b_psi(x))^2]``.

Per data point ``i`` (an element of the plates that enclose every site), with
``s_i = (l_i - b_psi(x_i) - c) / max(1, sigma)`` held constant::

    grad_theta = sum_i grad_theta log p(x_i, z_i)
    grad_phi   = sum_i s_i grad_phi log q(z_i | x_i)
    grad_psi   = sum_i (l_i - c - b_psi(x_i)) grad_psi b_psi(x_i)

``c`` and ``sigma`` are exponential moving averages (decay ``decay``, the paper's 0.8)
over the **previous** steps, so the step's gradient is exactly unbiased for the model
parameters and, for the guide parameters, for ``grad_phi L / max(1, sigma)`` (the
normalisation is a learning-rate scale); the paper's Algorithm 1 folds the current batch
into ``c`` and ``sigma`` first, which biases the step slightly.  The first step, which has
no history, centres and scales with its own batch.  Reparameterised guide sites, if
any, contribute their pathwise gradient.
"""

from collections.abc import Callable

import pyro
import torch
from pyro.infer import ELBO
from pyro.infer.enum import get_importance_trace
from torch import nn

from ..plates import plate_dims
from .traces import unscaled_log_prob

__all__ = ["NvilELBO"]

#: names of the baseline network's parameters and of the running moments
BASELINE = "nvil_baseline"
MOMENTS = "nvil_moments"


def _first_argument(*args, **kwargs) -> torch.Tensor:
    return args[0]


def _baseline_network(features: int, hidden: int) -> nn.Sequential:
    """``b_psi(x) = w1 . tanh(x W0 + b0) + b1``: Glorot-uniform weights, zero biases."""
    layers = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    for linear in (layers[0], layers[2]):
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
    return layers


def _per_element(log_prob: torch.Tensor, keep: set[int]) -> torch.Tensor:
    """``log_prob`` summed over every dim not in ``keep`` (as Pyro's ``RenyiELBO``)."""
    summed = [d for d in range(log_prob.dim()) if d - log_prob.dim() not in keep]
    return log_prob.sum(summed) if summed else log_prob


def _per_term(baseline: torch.Tensor, terms: tuple[int, ...]) -> torch.Tensor:
    """The baseline of each independent term of the ELBO (shape ``terms``): ``b_psi`` of
    each row of the input, one row per element of the plates that enclose every site; a
    model with a site outside every plate (a global latent) has one term, whose baseline
    is the sum over the rows (any function of the inputs is a baseline)."""
    if terms == ():
        return baseline.sum()
    if tuple(baseline.shape) != terms:
        raise ValueError(
            f"NvilELBO: the baseline gives {tuple(baseline.shape)} values but the ELBO has "
            f"{terms} independent terms, one per element of the plates that enclose every "
            "sample site: baseline_input must return one row per element, shape "
            f"{terms + ('features',)}."
        )
    return baseline


class NvilELBO(ELBO):
    """The discrete ELBO with the NVIL gradient estimator (module docstring).

    ``loss_and_grads`` returns the negative discrete ELBO (averaged over
    ``num_particles``) and fills every parameter's ``.grad`` with the NVIL estimate.  The
    baseline network is the module ``nvil_baseline`` in Pyro's parameter store and the
    running moments ``(mean, var, steps)`` the parameter ``nvil_moments`` (never given a
    gradient); both are declared by the guide that :meth:`tunable` returns, which is
    the guide to give ``SVI``::

        nvil = NvilELBO()
        svi = SVI(model, nvil.tunable(guide), pyro.optim.Adam({"lr": 3e-4}), loss=nvil)

    :param num_particles: independent samples per step (each with its own signal).
    :param hidden: width of the baseline network's tanh layer (the paper: 100).
    :param decay: decay of the running mean and variance of ``l - b_psi(x)`` (the paper:
        0.8).
    :param baseline_input: maps the model's arguments to the baseline's input, a
        ``(..., features)`` tensor with one row per data point (default: the first
        positional argument).  A model with a site outside every plate (a global latent)
        has one ELBO term, whose baseline is the sum of the rows'.
    :param vectorize_particles: as for Pyro's ``ELBO``.
    :param max_plate_nesting: as for Pyro's ``ELBO``.
    """

    def __init__(
        self,
        num_particles: int = 1,
        hidden: int = 100,
        decay: float = 0.8,
        baseline_input: Callable[..., torch.Tensor] = _first_argument,
        vectorize_particles: bool = False,
        max_plate_nesting: float = float("inf"),
    ) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"NvilELBO: decay must lie in [0, 1), got {decay!r}")
        if hidden < 1:
            raise ValueError(f"NvilELBO: hidden must be a positive width, got {hidden!r}")
        super().__init__(
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=max_plate_nesting,
        )
        self.hidden = hidden
        self.decay = decay
        self.baseline_input = baseline_input
        self._network: nn.Module | None = None

    def tunable(self, guide: Callable) -> Callable:
        """``guide`` that also declares the baseline network and the running moments."""

        def guide_with_baseline(*args, **kwargs):
            x = self.baseline_input(*args, **kwargs)
            self._baseline(x)
            pyro.param(MOMENTS, lambda: x.new_tensor([0.0, 1.0, 0.0]))
            return guide(*args, **kwargs)

        return guide_with_baseline

    def _get_trace(self, model, guide, args, kwargs):
        """A guide trace and the model replayed against it, with log densities (as
        ``Trace_ELBO``)."""
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        """``b_psi(x)``, the network registered (or, when stored, loaded) as ``nvil_baseline``."""
        if self._network is None:
            self._network = _baseline_network(x.shape[-1], self.hidden).to(x)
        return pyro.module(BASELINE, self._network)(x).squeeze(-1)

    def _particles(self, model, guide, args, kwargs):
        """Per sample and data point: ``l``, the direct part of ``l`` (the model's
        densities and any pathwise terms) and ``log q`` of the score-function sites."""
        signal, direct, log_q = [], [], []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            keep = plate_dims(model_trace, guide_trace)
            log_p = sum(
                _per_element(site["log_prob"], keep)
                for site in model_trace.nodes.values()
                if site["type"] == "sample"
            )
            log_q_score, log_q_path, score = 0.0, 0.0, 0.0
            for site in guide_trace.nodes.values():
                if site["type"] != "sample" or site["is_observed"]:
                    continue
                lp = _per_element(site["log_prob"], keep)
                if site["fn"].has_rsample:
                    log_q_path = log_q_path + lp
                else:
                    log_q_score = log_q_score + lp
                    # the score of q itself, unscaled: l carries the scale once
                    score = score + _per_element(unscaled_log_prob(site), keep)
            signal.append((log_p - log_q_path - log_q_score).detach())
            direct.append(log_p - log_q_path)
            log_q.append(torch.as_tensor(score))
        if self.vectorize_particles:
            return signal[0], direct[0], log_q[0]
        return torch.stack(signal), torch.stack(direct), torch.stack(log_q)

    def _surrogate(self, model, guide, args, kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO (a detached scalar) and the surrogate whose gradient is the estimate;
        advances the running moments."""
        signal, direct, log_q = self._particles(model, guide, args, kwargs)
        if MOMENTS not in pyro.get_param_store():
            raise ValueError(
                "NvilELBO: the guide does not declare the baseline network and its running "
                "moments; train with SVI(model, nvil.tunable(guide), optim, loss=nvil)."
            )
        baseline = _per_term(
            self._baseline(self.baseline_input(*args, **kwargs)), tuple(signal.shape[1:])
        )
        moments = pyro.param(MOMENTS)
        residual = signal - baseline.detach()
        first = bool(moments[2] == 0)
        mean = residual.mean() if first else moments[0].detach()
        var = residual.var(unbiased=False) if first else moments[1].detach()
        learning_signal = (residual - mean) / var.sqrt().clamp(min=1.0)
        surrogate = (direct + learning_signal * log_q).mean(0).sum() - 0.5 * (
            (signal - mean - baseline) ** 2
        ).mean(0).sum()
        with torch.no_grad():
            moments.copy_(
                torch.stack(
                    [
                        self.decay * mean + (1 - self.decay) * residual.mean(),
                        self.decay * var + (1 - self.decay) * residual.var(unbiased=False),
                        moments[2] + 1,
                    ]
                )
            )
        return signal.mean(0).sum(), surrogate

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negative discrete ELBO (no gradients, moments unchanged)."""
        with torch.no_grad():
            signal = self._particles(model, guide, args, kwargs)[0]
        return -signal.mean(0).sum().item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The negative discrete ELBO; accumulates the NVIL estimate into ``.grad``."""
        elbo, surrogate = self._surrogate(model, guide, args, kwargs)
        if surrogate.requires_grad:
            (-surrogate).backward()
        return -elbo.item()
