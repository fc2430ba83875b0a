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

import jax
import jax.numpy as jnp
import numpyro
import numpyro.primitives
from jax import Array

from .elbo import negated
from .multi_sample import MultiSampleELBO

__all__ = ["NvilELBO"]

#: names of the baseline network's parameters and of the running moments
BASELINE = "nvil_baseline"
MOMENTS = "nvil_moments"


def _first_argument(*args, **kwargs) -> Array:
    return args[0]


def _baseline(params: dict, x: Array) -> Array:
    """``b_psi(x) = w1 . tanh(x W0 + b0) + b1``, one number per row of ``x``."""
    h = jnp.tanh(x @ params[f"{BASELINE}_w0"] + params[f"{BASELINE}_b0"])
    return (h @ params[f"{BASELINE}_w1"] + params[f"{BASELINE}_b1"])[..., 0]


def _per_term(baseline: Array, terms: tuple[int, ...]) -> Array:
    """The baseline of each independent term of the ELBO, laid out as the terms (shape
    ``terms``: the elements of the plates that enclose every site, 1 on each other dim):
    ``b_psi`` of each row of the input, one row per element; an ELBO of one term (a model
    with a site outside every plate, a global latent; a minibatch of one point) takes the
    sum over the rows (any function of the inputs is a baseline)."""
    if math.prod(terms) == 1:
        return jnp.sum(baseline)
    shape, elements = tuple(jnp.shape(baseline)), tuple(n for n in terms if n != 1)
    if tuple(n for n in shape if n != 1) != elements:
        raise ValueError(
            f"NvilELBO: the baseline gives {shape} values but the ELBO has {elements} "
            "independent terms, one per element of the plates that enclose every sample "
            "site: baseline_input must return one row per element, shape "
            f"{elements + ('features',)}."
        )
    return jnp.reshape(baseline, terms)


class NvilELBO(MultiSampleELBO):
    """The discrete ELBO with the NVIL gradient estimator (module docstring).

    ``loss`` returns a surrogate whose value is the negative discrete ELBO (averaged over
    ``num_particles``) and whose ``jax.grad`` with respect to ``param_map`` is the NVIL
    estimate.  The baseline network's parameters are ``param`` sites
    ``nvil_baseline_{w|b}{0|1}`` and the running moments a ``mutable`` site
    ``nvil_moments``; both are declared by the guide that :meth:`tunable` returns,
    which is the guide to give ``SVI``::

        nvil = NvilELBO()
        svi = SVI(model, nvil.tunable(guide), optax.adam(3e-4), loss=nvil)

    The ``num_particles`` samples of a step share the data plate's subsample, and the
    first step's moments are taken over all of them.

    :param num_particles: independent samples per step (each with its own signal).
    :param hidden: width of the baseline network's tanh layer (the paper: 100).
    :param decay: decay of the running mean and variance of ``l - b_psi(x)`` (the paper:
        0.8).
    :param baseline_input: maps the model's arguments to the baseline's input, a
        ``(..., features)`` array with one row per data point (default: the first
        positional argument).  A model with a site outside every plate (a global latent)
        has one ELBO term, whose baseline is the sum of the rows'.
    :param vectorize_particles: as for NumPyro's ``ELBO``.
    """

    bound_per_point = False

    def __init__(
        self,
        num_particles: int = 1,
        hidden: int = 100,
        decay: float = 0.8,
        baseline_input: Callable[..., Array] = _first_argument,
        vectorize_particles: bool = True,
    ) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"NvilELBO: decay must lie in [0, 1), got {decay!r}")
        if hidden < 1:
            raise ValueError(f"NvilELBO: hidden must be a positive width, got {hidden!r}")
        super().__init__(num_particles, vectorize_particles)
        self.hidden = hidden
        self.decay = decay
        self.baseline_input = baseline_input

    def tunable(self, guide: Callable) -> Callable:
        """``guide`` that also declares the baseline network's parameters (Glorot-uniform
        weights, zero biases) and the running moments."""

        def guide_with_baseline(*args, **kwargs):
            features = jnp.shape(self.baseline_input(*args, **kwargs))[-1]
            glorot = jax.nn.initializers.glorot_uniform()
            for i, (m, n) in enumerate([(features, self.hidden), (self.hidden, 1)]):
                numpyro.param(f"{BASELINE}_w{i}", lambda key, m=m, n=n: glorot(key, (m, n)))
                numpyro.param(f"{BASELINE}_b{i}", jnp.zeros(n))
            numpyro.primitives.mutable(MOMENTS, {"mean": 0.0, "var": 1.0, "steps": 0})
            return guide(*args, **kwargs)

        return guide_with_baseline

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        """The ELBO and the surrogate whose gradient is the estimate, from the step's
        samples (the running moments those of ``params``)."""
        return self._with_moments(rng_key, params, model, guide, args, kwargs)[:2]

    def _with_moments(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array, dict]:
        """:meth:`_particle`, and the running moments advanced by the step.  Without the
        moments in ``params`` (``SVI.evaluate`` passes the parameters alone, ``SVI`` keeps
        the moments apart) the step has no history and centres and scales with its own
        batch, as the first."""
        if f"{BASELINE}_w0" not in params:
            raise ValueError(
                "NvilELBO: the guide does not declare the baseline network and its running "
                "moments; train with SVI(model, nvil.tunable(guide), optim, loss=nvil)."
            )
        samples = self._samples(rng_key, params, model, guide, args, kwargs)[0]
        signal = jax.lax.stop_gradient(samples.value)  # l per sample and element
        baseline = _per_term(
            _baseline(params, self.baseline_input(*args, **kwargs)), jnp.shape(signal)[1:]
        )
        log_q = sum(samples.score.values(), jnp.zeros(()))
        moments = params.get(MOMENTS, {"mean": 0.0, "var": 1.0, "steps": 0})
        residual = signal - jax.lax.stop_gradient(baseline)
        first = moments["steps"] == 0
        mean = jnp.where(first, residual.mean(), moments["mean"])
        var = jnp.where(first, residual.var(), moments["var"])
        learning_signal = (residual - mean) / jnp.maximum(1.0, jnp.sqrt(var))
        surrogate = (samples.direct + learning_signal * log_q).mean(0).sum() - 0.5 * (
            (signal - mean - baseline) ** 2
        ).mean(0).sum()
        advanced = {
            "mean": self.decay * mean + (1 - self.decay) * residual.mean(),
            "var": self.decay * var + (1 - self.decay) * residual.var(),
            "steps": moments["steps"] + 1,
        }
        return signal.mean(0).sum(), surrogate, advanced

    # NumPyro's state is functional: SVI hands the moments in and takes the advanced ones
    # back through loss_with_mutable_state (Pyro's NVIL advances its parameter in place).
    def loss_with_mutable_state(
        self, rng_key: Array, param_map: dict, model: Callable, guide: Callable, *args, **kwargs
    ) -> dict:
        """The negative discrete ELBO in value, the negative NVIL estimate in gradient, and
        the advanced running moments."""
        value, surrogate, moments = self._with_moments(
            rng_key, param_map, model, guide, args, kwargs
        )
        return {"loss": negated(value, surrogate), "mutable_state": {MOMENTS: moments}}
