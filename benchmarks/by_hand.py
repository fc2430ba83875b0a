"""The estimators written by hand with each PPL's generic machinery, for ``estimators.py``
to time the library against.

Each function is what a user would write without this package: trace the guide, run the
model at the values the estimator needs (``poutine.trace`` / ``poutine.replay`` /
``poutine.condition`` in Pyro; ``handlers.seed`` / ``trace`` / ``substitute`` / ``replay`` /
``condition`` in NumPyro), sum the sites' log-densities per data point, and build a
surrogate whose gradient is the estimate.  They compute the same estimators as the library
(``tests/test_by_hand.py`` checks that their draws agree with the library's), for a model
and guide of the shape of the sigmoid belief net: one data plate, the only batch
dimension of every site, and guide sites ``Bernoulli(logits).to_event(1)`` that read the
data only (one stochastic layer), so that DisARM and REBAR run the guide once, for its
logits, and score every other value with the distributions of that one trace.

Same conventions as the library's losses, so that the same code drives both:

- Pyro: ``loss_and_grads(model, guide, *args) -> float`` fills ``.grad`` of the parameters
  with the negative gradient estimate and returns the negative objective; pass it to
  ``SVI(model, guide, optim, loss=fn, loss_and_grads=fn)``.
- NumPyro: ``loss(rng_key, params, model, guide, *args)`` is the negative objective in value
  and the negative gradient estimate in gradient; :class:`ByHand` makes it an ``ELBO`` for
  ``SVI``, whose update takes ``jax.grad`` of it under ``jax.jit``.

``f(b) = log p(x, b) - log q(b | x)`` per data point throughout.
"""

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
import torch
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer.elbo import ELBO
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = [
    "ByHand",
    "numpyro_disarm",
    "numpyro_estimators",
    "numpyro_rebar",
    "numpyro_score_function",
    "numpyro_vimco",
    "pyro_disarm",
    "pyro_estimators",
    "pyro_rebar",
    "pyro_score_function",
    "pyro_vimco",
]

#: REBAR's fixed control-variate scale and temperature (``RebarELBO(tune=False)``'s defaults)
ETA, TEMPERATURE = 1.0, 0.5


# --- Pyro -------------------------------------------------------------------------------


def _pyro_log_density(trace: poutine.Trace) -> torch.Tensor:
    """The sum of a trace's sample sites' log-densities, per data point."""
    trace.compute_log_prob()
    return sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample")


def _pyro_latents(trace: poutine.Trace) -> dict[str, torch.Tensor]:
    """The logits of the guide's latent Bernoulli sites."""
    return {
        name: site["fn"].base_dist.logits
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }


def _pyro_model_at(model: Callable, values: dict, args: tuple) -> torch.Tensor:
    """``log p(x, values)`` per data point."""
    return _pyro_log_density(poutine.trace(poutine.condition(model, data=values)).get_trace(*args))


def _pyro_backward(objective: torch.Tensor, surrogate: torch.Tensor) -> float:
    (-surrogate.sum()).backward()
    return -objective.sum().item()


def pyro_score_function(model: Callable, guide: Callable, *args) -> float:
    """The score-function estimator (Williams 1992): ``f(b) grad log q(b)`` for the guide's
    parameters, ``grad log p(x, b)`` for the model's."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    log_p, log_q = _pyro_log_density(model_trace), _pyro_log_density(guide_trace)
    return _pyro_backward(log_p - log_q, (log_p - log_q).detach() * log_q + log_p)


def pyro_disarm(model: Callable, guide: Callable, *args) -> float:
    """DisARM (Dong, Mnih & Tucker 2020, Eq. 12): one ``u ~ Uniform(0, 1)`` per dimension,
    ``b = 1[u < sigmoid(alpha)]``, ``b~ = 1[1 - u < sigmoid(alpha)]`` and
    ``g_alpha = 1/2 (f(b) - f(b~)) (-1)^b~ 1[b != b~] sigmoid(|alpha|)``, plus the mean of
    ``grad log p`` at ``b`` and ``b~`` for the model's parameters."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    logits = _pyro_latents(guide_trace)
    u = {name: torch.rand_like(alpha) for name, alpha in logits.items()}
    b = {name: (u[name] < alpha.sigmoid()).float() for name, alpha in logits.items()}
    anti = {name: (1 - u[name] < alpha.sigmoid()).float() for name, alpha in logits.items()}
    log_p, anti_log_p = _pyro_model_at(model, b, args), _pyro_model_at(model, anti, args)
    log_q = sum(guide_trace.nodes[name]["fn"].log_prob(b[name]) for name in logits)
    anti_log_q = sum(guide_trace.nodes[name]["fn"].log_prob(anti[name]) for name in logits)
    f, anti_f = log_p - log_q, anti_log_p - anti_log_q
    surrogate = (log_p + anti_log_p) / 2
    for name, alpha in logits.items():
        differ = (b[name] != anti[name]).float()
        weight = (1 - 2 * anti[name]) * differ * alpha.abs().sigmoid()
        signal = ((f - anti_f) / 2).unsqueeze(-1) * weight
        surrogate = surrogate + (signal.detach() * alpha).sum(-1)
    return _pyro_backward((f + anti_f) / 2, surrogate)


def pyro_vimco(model: Callable, guide: Callable, *args, num_samples: int) -> float:
    """VIMCO (Mnih & Rezende 2016, Eqs. 8-10): ``K`` samples of ``log w_k = f(z_k)``, the
    bound ``L = log (1/K) sum_k w_k`` and
    ``g = sum_k (L - L_-k) grad log q(z_k) + sum_k w~_k grad log w_k``, ``L_-k`` the bound
    with ``log w_k`` replaced by the mean of the others' and ``w~`` the normalised weights."""
    log_w, log_q = [], []
    for _ in range(num_samples):
        guide_trace = poutine.trace(guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
        log_q.append(_pyro_log_density(guide_trace))
        log_w.append(_pyro_log_density(model_trace) - log_q[-1])
    log_w, log_q = torch.stack(log_w), torch.stack(log_q)
    bound = log_w.logsumexp(0) - math.log(num_samples)
    others = (log_w.sum(0) - log_w) / (num_samples - 1)
    signal = torch.stack(
        [
            bound
            - (torch.cat([log_w[:k], others[k : k + 1], log_w[k + 1 :]]).logsumexp(0))
            + math.log(num_samples)
            for k in range(num_samples)
        ]
    )
    weights = log_w.detach().softmax(0)
    return _pyro_backward(bound, (signal.detach() * log_q + weights * log_w).sum(0))


def pyro_rebar(model: Callable, guide: Callable, *args) -> float:
    """REBAR (Tucker et al. 2017, Eq. 6) with fixed ``eta`` and temperature ``lam``:
    ``z = alpha + logit(u)``, ``b = 1[z > 0]``, ``z~ = alpha + logit(v')`` with
    ``v' = v (1 - theta)`` if ``b = 0`` and ``1 - theta + v theta`` if ``b = 1``, and
    ``g = [f(b) - eta f(s(z~))] grad log q(b) + eta grad f(s(z)) - eta grad f(s(z~))``
    for the guide's parameters, ``s(z) = sigmoid(z / lam)`` and the log-masses continued to
    the relaxed values; ``grad log p(x, b)`` for the model's.  ``z~`` is the textbook
    formula: in float32 it can fall on the wrong side of 0 where ``1 - theta`` rounds
    (``|alpha|`` of 10 and more), which the library's conditional sample avoids.  The
    model's ``Bernoulli`` sites score the relaxed values, so torch's argument validation
    must be off (``torch.distributions.Distribution.set_default_validate_args(False)``)."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    logits = _pyro_latents(guide_trace)
    eps = torch.finfo(next(iter(logits.values())).dtype).eps  # logit(0) = -inf
    z = {name: alpha + torch.rand_like(alpha).logit(eps) for name, alpha in logits.items()}
    b = {name: (z[name] > 0).float() for name in logits}
    z_tilde = {}
    for name, alpha in logits.items():
        theta, v = alpha.sigmoid(), torch.rand_like(alpha)
        v_prime = torch.where(b[name] > 0, 1 - theta + v * theta, v * (1 - theta))
        z_tilde[name] = alpha + v_prime.logit(eps)

    def f(values: dict[str, torch.Tensor]) -> torch.Tensor:
        log_q = sum(guide_trace.nodes[name]["fn"].log_prob(values[name]) for name in logits)
        return _pyro_model_at(model, values, args) - log_q

    def relaxed(points: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: (point / TEMPERATURE).sigmoid() for name, point in points.items()}

    model_trace = poutine.trace(poutine.condition(model, data=b)).get_trace(*args)
    log_p = _pyro_log_density(model_trace)
    log_q = sum(guide_trace.nodes[name]["fn"].log_prob(b[name]) for name in logits)
    at_z, at_z_tilde = ETA * f(relaxed(z)), ETA * f(relaxed(z_tilde))
    surrogate = (log_p - log_q - at_z_tilde).detach() * log_q + at_z - at_z_tilde
    guide_params = _pyro_params(guide_trace)
    model_params = [p for p in _pyro_params(model_trace) if all(p is not q for q in guide_params)]
    guide_grads = torch.autograd.grad(-surrogate.sum(), guide_params)
    model_grads = torch.autograd.grad(-log_p.sum(), model_params)
    for param, grad in zip(guide_params + model_params, guide_grads + model_grads, strict=True):
        param.grad = grad if param.grad is None else param.grad + grad
    return -(log_p - log_q).sum().item()


def _pyro_params(trace: poutine.Trace) -> list[torch.Tensor]:
    return [
        site["value"].unconstrained() for site in trace.nodes.values() if site["type"] == "param"
    ]


def pyro_estimators(num_samples: int) -> dict[str, Callable]:
    """The Pyro functions by the name of the library estimator each computes, VIMCO with
    ``K = num_samples``."""
    return _by_name(pyro_rebar, pyro_disarm, pyro_vimco, pyro_score_function, num_samples)


def _by_name(rebar, disarm, vimco, score_function, num_samples: int) -> dict[str, Callable]:
    return {
        "RebarELBO": rebar,
        "DisarmELBO": disarm,
        "VimcoELBO": functools.partial(vimco, num_samples=num_samples),
        "score function": score_function,
    }


# --- NumPyro ----------------------------------------------------------------------------


class ByHand(ELBO):
    """A hand-written ``loss(rng_key, params, model, guide, *args)`` as an ``ELBO``, for
    ``numpyro.infer.SVI``."""

    can_infer_discrete = True

    def __init__(self, loss: Callable) -> None:
        super().__init__()
        self.loss_fn = loss

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        return self.loss_fn(rng_key, param_map, model, guide, *args, **kwargs)


def _numpyro_log_density(tr: dict) -> jax.Array:
    """The sum of a trace's sample sites' log-densities, per data point."""
    return sum(
        site["fn"].log_prob(site["value"]) for site in tr.values() if site["type"] == "sample"
    )


def _numpyro_guide(rng_key: jax.Array, params: dict, guide: Callable, args: tuple) -> dict:
    seeded = handlers.seed(guide, rng_key)
    return handlers.trace(handlers.substitute(seeded, data=params)).get_trace(*args)


def _numpyro_latents(tr: dict) -> dict[str, jax.Array]:
    """The logits of the guide's latent Bernoulli sites."""
    return {
        name: site["fn"].base_dist.logits
        for name, site in tr.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def _numpyro_model_at(model: Callable, params: dict, values: dict, args: tuple) -> jax.Array:
    """``log p(x, values)`` per data point."""
    conditioned = handlers.substitute(handlers.condition(model, data=values), data=params)
    return _numpyro_log_density(handlers.trace(conditioned).get_trace(*args))


def _numpyro_loss(objective: jax.Array, surrogate: jax.Array) -> jax.Array:
    """``-objective`` in value, ``-grad surrogate`` in gradient."""
    stop = jax.lax.stop_gradient
    return -(stop(objective.sum()) + surrogate.sum() - stop(surrogate.sum()))


def _numpyro_uniforms(rng_key: jax.Array, logits: dict[str, jax.Array]) -> dict[str, jax.Array]:
    keys = jax.random.split(rng_key, len(logits))
    return {
        name: jax.random.uniform(key, alpha.shape, alpha.dtype)
        for key, (name, alpha) in zip(keys, logits.items(), strict=True)
    }


def numpyro_score_function(rng_key, params: dict, model: Callable, guide: Callable, *args):
    """The score-function estimator (Williams 1992): ``f(b) grad log q(b)`` for the guide's
    parameters, ``grad log p(x, b)`` for the model's."""
    guide_key, model_key = jax.random.split(rng_key)
    guide_trace = _numpyro_guide(guide_key, params, guide, args)
    replayed = handlers.replay(handlers.seed(model, model_key), trace=guide_trace)
    model_trace = handlers.trace(handlers.substitute(replayed, data=params)).get_trace(*args)
    log_p, log_q = _numpyro_log_density(model_trace), _numpyro_log_density(guide_trace)
    f = log_p - log_q
    return _numpyro_loss(f, jax.lax.stop_gradient(f) * log_q + log_p)


def numpyro_disarm(rng_key, params: dict, model: Callable, guide: Callable, *args):
    """DisARM (Dong, Mnih & Tucker 2020, Eq. 12): one ``u ~ Uniform(0, 1)`` per dimension,
    ``b = 1[u < sigmoid(alpha)]``, ``b~ = 1[1 - u < sigmoid(alpha)]`` and
    ``g_alpha = 1/2 (f(b) - f(b~)) (-1)^b~ 1[b != b~] sigmoid(|alpha|)``, plus the mean of
    ``grad log p`` at ``b`` and ``b~`` for the model's parameters."""
    guide_key, u_key = jax.random.split(rng_key)
    guide_trace = _numpyro_guide(guide_key, params, guide, args)
    logits = _numpyro_latents(guide_trace)
    u = _numpyro_uniforms(u_key, logits)
    b = {k: (u[k] < jax.nn.sigmoid(a)).astype(a.dtype) for k, a in logits.items()}
    anti = {k: (1 - u[k] < jax.nn.sigmoid(a)).astype(a.dtype) for k, a in logits.items()}
    log_p = _numpyro_model_at(model, params, b, args)
    anti_log_p = _numpyro_model_at(model, params, anti, args)
    log_q = sum(guide_trace[k]["fn"].log_prob(b[k]) for k in logits)
    anti_log_q = sum(guide_trace[k]["fn"].log_prob(anti[k]) for k in logits)
    f, anti_f = log_p - log_q, anti_log_p - anti_log_q
    surrogate = (log_p + anti_log_p) / 2
    for k, alpha in logits.items():
        weight = (1 - 2 * anti[k]) * (b[k] != anti[k]) * jax.nn.sigmoid(jnp.abs(alpha))
        signal = ((f - anti_f) / 2)[..., None] * weight
        surrogate = surrogate + jnp.sum(jax.lax.stop_gradient(signal) * alpha, -1)
    return _numpyro_loss((f + anti_f) / 2, surrogate)


def numpyro_vimco(rng_key, params: dict, model: Callable, guide: Callable, *args, num_samples: int):
    """VIMCO (Mnih & Rezende 2016, Eqs. 8-10): ``K`` samples of ``log w_k = f(z_k)`` drawn
    with ``jax.vmap``, the bound ``L = log (1/K) sum_k w_k`` and
    ``g = sum_k (L - L_-k) grad log q(z_k) + sum_k w~_k grad log w_k``, ``L_-k`` the bound
    with ``log w_k`` replaced by the mean of the others' and ``w~`` the normalised weights."""

    def sample(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        guide_key, model_key = jax.random.split(key)
        guide_trace = _numpyro_guide(guide_key, params, guide, args)
        replayed = handlers.replay(handlers.seed(model, model_key), trace=guide_trace)
        model_trace = handlers.trace(handlers.substitute(replayed, data=params)).get_trace(*args)
        log_q = _numpyro_log_density(guide_trace)
        return _numpyro_log_density(model_trace) - log_q, log_q

    log_w, log_q = jax.vmap(sample)(jax.random.split(rng_key, num_samples))
    bound = logsumexp(log_w, 0) - math.log(num_samples)
    others = (log_w.sum(0) - log_w) / (num_samples - 1)
    signal = jnp.stack(
        [
            bound - logsumexp(log_w.at[k].set(others[k]), 0) + math.log(num_samples)
            for k in range(num_samples)
        ]
    )
    weights = jax.nn.softmax(jax.lax.stop_gradient(log_w), 0)
    surrogate = (jax.lax.stop_gradient(signal) * log_q + weights * log_w).sum(0)
    return _numpyro_loss(bound, surrogate)


def numpyro_rebar(rng_key, params: dict, model: Callable, guide: Callable, *args):
    """REBAR (Tucker et al. 2017, Eq. 6) with fixed ``eta`` and temperature ``lam``:
    ``z = alpha + logit(u)``, ``b = 1[z > 0]``, ``z~ = alpha + logit(v')`` with
    ``v' = v (1 - theta)`` if ``b = 0`` and ``1 - theta + v theta`` if ``b = 1``, and
    ``g = [f(b) - eta f(s(z~))] grad log q(b) + eta grad f(s(z)) - eta grad f(s(z~))``
    for the guide's parameters, ``s(z) = sigmoid(z / lam)`` and the log-masses continued to
    the relaxed values; ``grad log p(x, b)`` for the model's (held fixed in ``f(s(.))``).
    ``z~`` is the textbook formula: in float32 it can fall on the wrong side of 0 where
    ``1 - theta`` rounds (``|alpha|`` of 10 and more), which the library's conditional
    sample avoids."""
    with numpyro.validation_enabled(False):  # log-masses at relaxed values
        return _numpyro_rebar(rng_key, params, model, guide, args)


def _numpyro_rebar(rng_key, params: dict, model: Callable, guide: Callable, args: tuple):
    guide_key, u_key, v_key = jax.random.split(rng_key, 3)
    guide_trace = _numpyro_guide(guide_key, params, guide, args)
    logits = _numpyro_latents(guide_trace)
    eps = jnp.finfo(next(iter(logits.values())).dtype).eps  # logit(0) = -inf
    u, v = _numpyro_uniforms(u_key, logits), _numpyro_uniforms(v_key, logits)
    z = {k: a + jax.scipy.special.logit(jnp.clip(u[k], eps, 1 - eps)) for k, a in logits.items()}
    b = {k: (z[k] > 0).astype(z[k].dtype) for k in logits}
    z_tilde = {}
    for k, alpha in logits.items():
        theta = jax.nn.sigmoid(alpha)
        v_prime = jnp.where(b[k] > 0, 1 - theta + v[k] * theta, v[k] * (1 - theta))
        z_tilde[k] = alpha + jax.scipy.special.logit(jnp.clip(v_prime, eps, 1 - eps))
    in_guide = {name for name, site in guide_trace.items() if site["type"] == "param"}
    fixed = {k: p if k in in_guide else jax.lax.stop_gradient(p) for k, p in params.items()}

    def f_relaxed(points: dict[str, jax.Array]) -> jax.Array:
        values = {k: jax.nn.sigmoid(point / TEMPERATURE) for k, point in points.items()}
        log_q = sum(guide_trace[k]["fn"].log_prob(values[k]) for k in logits)
        return _numpyro_model_at(model, fixed, values, args) - log_q

    log_p = _numpyro_model_at(model, params, b, args)
    log_q = sum(guide_trace[k]["fn"].log_prob(b[k]) for k in logits)
    at_z, at_z_tilde = ETA * f_relaxed(z), ETA * f_relaxed(z_tilde)
    signal = jax.lax.stop_gradient(log_p - log_q - at_z_tilde)
    return _numpyro_loss(log_p - log_q, signal * log_q + log_p + at_z - at_z_tilde)


def numpyro_estimators(num_samples: int) -> dict[str, Callable]:
    """The NumPyro losses by the name of the library estimator each computes, VIMCO with
    ``K = num_samples``."""
    return _by_name(
        numpyro_rebar, numpyro_disarm, numpyro_vimco, numpyro_score_function, num_samples
    )
