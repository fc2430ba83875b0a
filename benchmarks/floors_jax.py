"""The bare jitted JAX floor of each estimator of the discrete ELBO's gradient on the
sigmoid belief net 200H-784V, for ``numpyro_floors.py`` to time NumPyro's estimators
against (``tests/test_floors.py`` checks each floor's mean gradient against enumeration).

The floor of an estimator is its SVI step written directly in JAX for this one model:
``jax.random`` noise, the linear encoder and decoder as matrix products, the log-densities
as ``jax.nn`` formulas, the surrogate whose gradient is the estimate, ``jax.grad`` and a
plain SGD update, all in one ``jax.jit`` (no traces, handlers or distributions).  It is
what the library's step costs at best: the library adds the generic machinery (NumPyro's
traces, plates, the checks) on the same arithmetic.  The model (``problems.py``,
``SigmoidBeliefNet(latents=(200,), hidden=None)``): ``b ~ Bernoulli(1/2)^H``,
``x | b ~ Bernoulli(logits = b W_d + c_d)``; guide ``b | x ~ Bernoulli(logits = x W_e + c_e)``;
``f(b) = log p(x, b) - log q(b | x)`` per image.  The parameters have the names of the
library's ``numpyro.param`` sites, so one dict serves both sides.

The estimators (``K = 5`` samples per image for VIMCO and RLOO; temperature ``lam = 0.5``
and ``eta = 1`` for REBAR and RELAX's initial values):

- REBAR (Tucker et al. 2017, Eq. 6), ``eta`` and ``lam`` fixed (``RebarELBO(tune=False)``);
- RELAX (Grathwohl et al. 2018, Eq. 5) with ``c_phi = eta f(s) + <w, s>``,
  ``s = sigmoid(z / lam)``, and ``phi = (eta, w, log lam)`` descending the gradient of
  ``sum g^2`` over the encoder's parameters (``RelaxELBO()``'s default);
- DisARM (Dong, Mnih & Tucker 2020, Eq. 12);
- VIMCO (Mnih & Rezende 2016, Eqs. 8-10);
- RLOO (Kool, van Hoof & Welling 2019), REINFORCE with the leave-one-out baseline.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "DECODER",
    "ENCODER",
    "ETA",
    "LR",
    "RELAX_PHI",
    "SURROGATES",
    "TEMPERATURE",
    "K",
    "disarm",
    "estimate",
    "floor_step",
    "rebar",
    "relax",
    "rloo",
    "vimco",
]

TEMPERATURE, ETA = 0.5, 1.0
#: VIMCO's and RLOO's samples per image
K = 5
#: the SGD step size of both sides (small: the parameters barely move over a run)
LR = 1e-4
ENCODER = ("encoder0_w0", "encoder0_b0")
DECODER = ("decoder0_w0", "decoder0_b0")
#: RELAX's own quantities, the temperature unconstrained (its log), as SVI stores it
RELAX_PHI = ("relax_eta", "z1_relax_weight", "z1_relax_temperature")


def _uniform(key, shape, dtype):
    """``U ~ Uniform(0, 1)`` never 0 or 1: multiples of ``eps`` shifted by half a step."""
    return jax.random.uniform(key, shape, dtype) + jnp.finfo(dtype).eps / 2


def _softplus(a):
    """``log(1 + e^a)`` as ``relu(a) + log1p(e^-|a|)``: two transcendentals forward, the
    backward reusing ``e^-|a|`` (``jax.nn.softplus``, a ``logaddexp``, takes another; the
    derivative of ``jnp.maximum`` splits ties, at the cost of a select and a divide)."""
    return jax.nn.relu(a) + jnp.log1p(jnp.exp(-jnp.abs(a)))


def _logits(p: dict, x):
    """The guide's logits ``l = x W_e + c_e``."""
    return x @ p["encoder0_w0"] + p["encoder0_b0"]


def _log_joint(p: dict, x, b):
    """``log p(x, b)`` per image, the Bernoulli log-masses continued to ``b`` in [0, 1]."""
    a = b @ p["decoder0_w0"] + p["decoder0_b0"]
    return jnp.sum(x * a - _softplus(a), -1) - b.shape[-1] * math.log(2.0)


def _log_q(logits, b):
    """``log q(b | x) = sum_i b_i l_i - softplus(l_i)`` per image, continued to [0, 1]."""
    return jnp.sum(b * logits - _softplus(logits), -1)


def _control_variate_surrogate(p: dict, key, x, temperature, cv: Callable):
    """``(sum f(b), surrogate)`` of REBAR's and RELAX's estimator (Tucker et al. 2017, Eq. 6;
    Grathwohl et al. 2018, Eq. 5): ``z = l + log u - log(1 - u)``, ``b = 1[z > 0]``,
    ``z~ ~ p(z | b)`` reparameterised, ``s = sigmoid(. / lam)``, and
    ``g = [f(b) - c(z~)] grad log q(b) + grad f(b) + grad c(z) - grad c(z~)`` with
    ``c(z) = cv(f(s(z)), s(z))``, the decoder held fixed inside ``c``."""
    stop = jax.lax.stop_gradient
    u_key, v_key = jax.random.split(key)
    logits = _logits(p, x)
    u = _uniform(u_key, logits.shape, logits.dtype)
    z = logits + jnp.log(u) - jnp.log1p(-u)
    b = (stop(z) > 0).astype(logits.dtype)
    # z~ = l + logit(v'), v' = v (1 - theta) or 1 - theta + v theta, in log space
    v = _uniform(v_key, logits.shape, logits.dtype)
    sign = 2 * b - 1
    z_tilde = sign * (_softplus(sign * logits + jnp.log(v)) - jnp.log1p(-v))
    fixed = {k: stop(p[k]) for k in DECODER}

    def c(point):
        s = jax.nn.sigmoid(point / temperature)
        return cv(_log_joint(fixed, x, s) - _log_q(logits, s), s)

    log_p, log_q = _log_joint(p, x, b), _log_q(logits, b)
    f = log_p - log_q
    at_z, at_tilde = c(z), c(z_tilde)
    # -c(z~) grad log q, c(z~) still differentiable in phi: the factor is zero in value
    surrogate = stop(f) * log_q + log_p + at_z - at_tilde + at_tilde * (stop(log_q) - log_q)
    return jnp.sum(f), jnp.sum(surrogate)


def rebar(p: dict, key, x):
    """REBAR with fixed ``eta`` and ``lam``: ``c(z) = eta f(sigmoid(z / lam))``."""
    return _control_variate_surrogate(p, key, x, TEMPERATURE, lambda f, s: ETA * f)


def relax(p: dict, key, x):
    """RELAX with ``c_phi(z) = eta f(s) + <w, s>``, ``s = sigmoid(z / lam)``, ``lam`` the
    exponential of ``p["z1_relax_temperature"]``."""
    temperature = jnp.exp(p["z1_relax_temperature"])
    return _control_variate_surrogate(
        p, key, x, temperature, lambda f, s: p["relax_eta"] * f + s @ p["z1_relax_weight"]
    )


def _samples(p: dict, key, x, k: int):
    """``(log p(x, b_k), log q(b_k))``, each ``(k, images)``, for ``k`` samples per image."""
    logits = _logits(p, x)
    u = _uniform(key, (k, *logits.shape), logits.dtype)
    b = (1 - u < jax.nn.sigmoid(jax.lax.stop_gradient(logits))).astype(logits.dtype)
    return _log_joint(p, x, b), _log_q(logits, b)


def disarm(p: dict, key, x):
    """DisARM: ``b = 1[1 - u < sigmoid(l)]``, ``b~ = 1[u < sigmoid(l)]`` and
    ``g_l = 1/2 (f(b) - f(b~)) (-1)^b~ 1[b != b~] sigmoid(|l|)``, plus the mean of the
    decoder's gradients at ``b`` and ``b~``."""
    stop = jax.lax.stop_gradient
    logits = _logits(p, x)
    u = _uniform(key, logits.shape, logits.dtype)
    theta = jax.nn.sigmoid(stop(logits))
    b = (1 - u < theta).astype(logits.dtype)
    anti = (u < theta).astype(logits.dtype)
    log_p, anti_log_p = _log_joint(p, x, b), _log_joint(p, x, anti)
    f, anti_f = log_p - _log_q(logits, b), anti_log_p - _log_q(logits, anti)
    weight = (1 - 2 * anti) * (b != anti) * jax.nn.sigmoid(jnp.abs(logits))
    signal = stop((f - anti_f)[:, None] / 2 * weight)
    surrogate = (log_p + anti_log_p) / 2 + jnp.sum(signal * logits, -1)
    return jnp.sum((f + anti_f) / 2), jnp.sum(surrogate)


def vimco(p: dict, key, x, k: int = K):
    """VIMCO: ``L = log (1/K) sum_k w_k`` and
    ``g = sum_k (L - L_-k) grad log q(b_k) + sum_k w~_k grad log w_k``, ``L_-k`` with
    ``log w_k`` replaced by the mean of the others'."""
    stop = jax.lax.stop_gradient
    log_p, log_q = _samples(p, key, x, k)
    log_w = log_p - log_q
    bound = jax.nn.logsumexp(log_w, 0) - math.log(k)
    others = (jnp.sum(log_w, 0) - log_w) / (k - 1)
    eye = jnp.eye(k, dtype=bool)[:, :, None]
    swapped = jnp.where(eye, others[:, None], log_w[None])
    signal = stop(bound - (jax.nn.logsumexp(swapped, 1) - math.log(k)))
    weights = jax.nn.softmax(stop(log_w), 0)
    return jnp.sum(bound), jnp.sum(signal * log_q + weights * log_w)


def rloo(p: dict, key, x, k: int = K):
    """RLOO: ``g = 1/K sum_k (f_k - mean_{j != k} f_j) grad log q(b_k) + 1/K sum_k grad f_k``
    (the zero-mean score of ``log q`` left out of ``grad f_k``)."""
    log_p, log_q = _samples(p, key, x, k)
    f = log_p - log_q
    signal = jax.lax.stop_gradient(f - (jnp.sum(f, 0) - f) / (k - 1))
    return jnp.sum(jnp.mean(f, 0)), jnp.sum(jnp.mean(signal * log_q + log_p, 0))


#: each floor's ``(params, key, x) -> (objective, surrogate)``; the surrogate's gradient in
#: the encoder's and decoder's parameters is the estimate of the objective's gradient
SURROGATES: dict[str, Callable] = {
    "RebarELBO(tune=False)": rebar,
    "RelaxELBO": relax,
    "DisarmELBO": disarm,
    f"VimcoELBO(K={K})": vimco,
    f"RlooELBO(K={K})": rloo,
}


def _gradient(surrogate: Callable, p: dict, key, x):
    """``(g, objective)``: the gradient of ``surrogate`` in every parameter of ``p``."""

    def swapped(params):
        value, s = surrogate(params, key, x)
        return s, value

    return jax.grad(swapped, has_aux=True)(p)


def _relax_estimate(p: dict, key, x):
    """``(g, objective)`` of RELAX: ``g`` for the model's and guide's parameters, and minus
    the gradient of ``sum g^2`` over the encoder's in RELAX's own quantities."""
    theta = {k: v for k, v in p.items() if k not in RELAX_PHI}

    def moment(phi):
        g, value = _gradient(relax, {**theta, **phi}, key, x)
        return sum(jnp.sum(g[k] ** 2) for k in ENCODER), (g, value)

    phi = {k: p[k] for k in RELAX_PHI}
    (_, (g, value)), grad_phi = jax.value_and_grad(moment, has_aux=True)(phi)
    return {**{k: g[k] for k in theta}, **{k: -v for k, v in grad_phi.items()}}, value


def estimate(name: str, p: dict, key, x) -> tuple[dict, jax.Array]:
    """``(g, objective)`` of the floor of estimator ``name`` (a key of :data:`SURROGATES`):
    the estimate of the objective's gradient in each parameter of ``p`` (RELAX: its own
    quantities get minus the gradient of the estimate's second moment), and the objective's
    estimate, summed over the images."""
    if name == "RelaxELBO":
        return _relax_estimate(p, key, x)
    return _gradient(SURROGATES[name], p, key, x)


def floor_step(name: str) -> Callable:
    """The jitted floor step of estimator ``name`` (a key of :data:`SURROGATES`):
    ``(params, key, x) -> (params, key, loss)``, with NumPyro SVI's use of keys (split, the
    second half for this step) and its loss (the negative objective); the parameters
    ascend the estimate by SGD."""

    def step(p: dict, key, x):
        key, step_key = jax.random.split(key)
        g, value = estimate(name, p, step_key, x)
        return {k: v + LR * g[k] for k, v in p.items()}, key, -value

    return jax.jit(step)
