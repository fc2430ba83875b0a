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

import math
from collections.abc import Callable

import pyro
import torch
from torch import nn

from .multi_sample import MultiSampleELBO

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


def _per_term(baseline: torch.Tensor, terms: tuple[int, ...]) -> torch.Tensor:
    """The baseline of each independent term of the ELBO, laid out as the terms (shape
    ``terms``: the elements of the plates that enclose every site, 1 on each other dim):
    ``b_psi`` of each row of the input, one row per element; an ELBO of one term (a model
    with a site outside every plate, a global latent; a minibatch of one point) takes the
    sum over the rows (any function of the inputs is a baseline)."""
    if math.prod(terms) == 1:
        return baseline.sum()
    shape, elements = tuple(baseline.shape), tuple(n for n in terms if n != 1)
    if tuple(n for n in shape if n != 1) != elements:
        raise ValueError(
            f"NvilELBO: the baseline gives {shape} values but the ELBO has {elements} "
            "independent terms, one per element of the plates that enclose every sample "
            "site: baseline_input must return one row per element, shape "
            f"{elements + ('features',)}."
        )
    return baseline.reshape(terms)


class NvilELBO(MultiSampleELBO):
    """The discrete ELBO with the NVIL gradient estimator (module docstring).

    ``loss_and_grads`` returns the negative discrete ELBO (averaged over
    ``num_particles``) and fills every parameter's ``.grad`` with the NVIL estimate;
    ``differentiable_loss`` is the same as a loss whose gradient is the estimate (for a
    torch optimiser, ``LightningSVI``).  The baseline network is the module
    ``nvil_baseline`` in Pyro's parameter store and the running moments
    ``(mean, var, steps)`` the parameter ``nvil_moments`` (never given a gradient), both
    held by :attr:`tuned` (so by ``nvil(model, guide)``) and declared by the guide that
    :meth:`tunable` returns, which is the guide to give ``SVI``::

        nvil = NvilELBO()
        svi = SVI(model, nvil.tunable(guide), pyro.optim.Adam({"lr": 3e-4}), loss=nvil)

    The ``num_particles`` samples of a step share the data plate's subsample, and the
    first step's moments are taken over all of them.

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

    bound_per_point = False

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
        super().__init__(num_particles, vectorize_particles, max_plate_nesting)
        self.hidden = hidden
        self.decay = decay
        self.baseline_input = baseline_input

    def tunable(self, guide: Callable) -> Callable:
        """``guide`` that also declares the baseline network and the running moments."""

        def guide_with_baseline(*args, **kwargs):
            x = self.baseline_input(*args, **kwargs)
            self._baseline(x)
            self.tuned(MOMENTS, x.new_tensor([0.0, 1.0, 0.0]))
            return guide(*args, **kwargs)

        return guide_with_baseline

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        """``b_psi(x)``, the network of :attr:`tuned` registered (or, when stored, loaded)
        as ``nvil_baseline``."""
        network = getattr(self.tuned, BASELINE, None)
        if network is None:
            network = _baseline_network(x.shape[-1], self.hidden).to(x)
            setattr(self.tuned, BASELINE, network)
        return pyro.module(BASELINE, network)(x).squeeze(-1)

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO and the surrogate whose gradient is the estimate, from the step's
        samples; advances the running moments.  Without gradients (``loss``,
        ``SVI.evaluate_loss``) the ELBO alone, the moments unchanged."""
        samples = self._samples(model, guide, args, kwargs)[0]
        signal = samples.value.detach()  # l per sample and element
        if not torch.is_grad_enabled():
            return signal.mean(0).sum(), torch.zeros(())
        if MOMENTS not in dict(self.tuned.named_pyro_params()):
            raise ValueError(
                "NvilELBO: the guide does not declare the baseline network and its running "
                "moments; train with SVI(model, nvil.tunable(guide), optim, loss=nvil)."
            )
        baseline = _per_term(
            self._baseline(self.baseline_input(*args, **kwargs)), tuple(signal.shape[1:])
        )
        log_q = sum(samples.score.values(), torch.zeros(()))
        moments = self.tuned(MOMENTS, signal.new_tensor([0.0, 1.0, 0.0]))
        residual = signal - baseline.detach()
        first = bool(moments[2] == 0)
        mean = residual.mean() if first else moments[0].detach()
        var = residual.var(unbiased=False) if first else moments[1].detach()
        learning_signal = (residual - mean) / var.sqrt().clamp(min=1.0)
        surrogate = (samples.direct + learning_signal * log_q).mean(0).sum() - 0.5 * (
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
