"""``NvilELBO`` in both packages, stated once: its gradient is the exact gradient of the
discrete ELBO (the guide's part scaled by the variance normalisation), with a global
latent too, its value is the negative discrete ELBO, through ``SVI``'s evaluation too,
and a guide without the baseline is refused.

The reference is computed here in float64 numpy, independently of the code under test:
the ELBO of a model with three ``Bernoulli`` latents per point and a Gaussian likelihood
is a sum over the 8 joint states (times the 2 states of the global latent ``g``, which
shifts every point's mean by ``v g``), and its gradient is taken by central finite
differences.
"""

import itertools
import math

import numpy as np
import pytest

X = np.array([[0.7], [-1.3]])  # two data points, one feature each
PARAMS = {  # model: prior logits and weights; guide: logits = a * x + c
    "theta": np.array([0.4, -0.8, 0.1]),
    "w": np.array([1.2, -0.5, 2.0]),
    "a": np.array([0.9, -0.3, 0.5]),
    "c": np.array([-0.2, 0.6, 0.3]),
}
MODEL, GUIDE = ("theta", "w"), ("a", "c")
#: with a global latent ``g ~ Bernoulli(theta_g)``, guide ``Bernoulli(a_g)``
GLOBAL = {**PARAMS, "theta_g": np.array([0.2]), "v": np.array([1.5]), "a_g": np.array([-0.3])}
GLOBAL_MODEL, GLOBAL_GUIDE = (*MODEL, "theta_g", "v"), (*GUIDE, "a_g")
MOMENTS = (0.3, 4.0, 5.0)  # running mean, running variance (sigma = 2), steps so far
STATES = np.array(list(itertools.product([0.0, 1.0], repeat=3)))


def _log_bernoulli(z, logits):
    return z * logits - np.logaddexp(0.0, logits)


def _local_elbo(p: dict, shift: float) -> float:
    """``sum_i sum_z q(z | x_i) [log p(z) + log N(x_i; w.z + shift, 1) - log q(z | x_i)]``."""
    total = 0.0
    for x in X[:, 0]:
        log_q = _log_bernoulli(STATES, p["a"] * x + p["c"]).sum(-1)
        log_p = _log_bernoulli(STATES, p["theta"]).sum(-1)
        log_p = log_p - 0.5 * (x - STATES @ p["w"] - shift) ** 2 - 0.5 * math.log(2 * math.pi)
        total += float(np.exp(log_q) @ (log_p - log_q))
    return total


def exact_elbo(p: dict) -> float:
    """The ELBO of the local latents, or, with ``p["v"]``, of the global latent too:
    ``sum_g q(g) [log p(g) - log q(g) + local ELBO given g]``."""
    if "v" not in p:
        return _local_elbo(p, 0.0)
    total = 0.0
    for g in (0.0, 1.0):
        log_q = float(_log_bernoulli(g, p["a_g"][0]))
        log_p = float(_log_bernoulli(g, p["theta_g"][0]))
        total += math.exp(log_q) * (log_p - log_q + _local_elbo(p, p["v"][0] * g))
    return total


def exact_gradient(params: dict = PARAMS, eps: float = 1e-6) -> dict:
    grad = {}
    for name, value in params.items():
        grad[name] = np.zeros_like(value)
        for k in range(value.size):
            up, down = dict(params), dict(params)
            up[name], down[name] = value.copy(), value.copy()
            up[name][k] += eps
            down[name][k] -= eps
            grad[name][k] = (exact_elbo(up) - exact_elbo(down)) / (2 * eps)
    return grad


class PyroNvil:
    """Draws of the NVIL loss and its gradient, Pyro (float64)."""

    name = "pyro"

    def __init__(self):
        import pyro
        import pyro.distributions as dist
        import torch

        from pyro_concrete.estimators.nvil import NvilELBO

        self.pyro, self.torch, self.NvilELBO = pyro, torch, NvilELBO
        self.size = None  # the data plate's full size: x is a minibatch of it
        self.global_latent = False

        def model(x):
            theta, w, shift = pyro.param("theta"), pyro.param("w"), 0.0
            if self.global_latent:
                g = pyro.sample("g", dist.Bernoulli(logits=pyro.param("theta_g")).to_event(1))
                shift = pyro.param("v") * g
            with pyro.plate("data", self.size or x.shape[0], subsample_size=x.shape[0]):
                z = pyro.sample("z", dist.Bernoulli(logits=theta).to_event(1))
                mean = (z * w).sum(-1, keepdim=True) + shift
                pyro.sample("x", dist.Normal(mean, 1.0).to_event(1), obs=x)

        def guide(x):
            a, c = pyro.param("a"), pyro.param("c")
            if self.global_latent:
                pyro.sample("g", dist.Bernoulli(logits=pyro.param("a_g")).to_event(1))
            with pyro.plate("data", self.size or x.shape[0], subsample_size=x.shape[0]):
                pyro.sample("z", dist.Bernoulli(logits=a * x + c).to_event(1))

        self.model, self.guide = model, guide

    def draws(
        self, batches: int, particles: int, seed: int, params: dict = PARAMS
    ) -> tuple[np.ndarray, dict]:
        """``batches`` losses and gradients, each averaged over ``particles`` samples (the
        model with a global latent when ``params`` has its parameters)."""
        pyro, torch = self.pyro, self.torch
        pyro.set_rng_seed(seed)
        pyro.clear_param_store()
        self.global_latent = "v" in params
        nvil = self.NvilELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
        guide = nvil.tunable(self.guide)
        x = torch.tensor(X)
        for name, value in params.items():
            pyro.param(name, torch.tensor(value))
        guide(x)  # declares the baseline network and the moments
        losses, grads = [], {name: [] for name in params}
        for _ in range(batches):
            with torch.no_grad():
                pyro.param("nvil_moments").copy_(torch.tensor(MOMENTS))
            with pyro.poutine.trace(param_only=True) as capture:
                losses.append(nvil.loss_and_grads(self.model, guide, x))
            for name in params:
                p = pyro.param(name).unconstrained()
                grads[name].append(-p.grad.numpy().copy())
            for site in capture.trace.nodes.values():
                site["value"].unconstrained().grad = None
        return np.array(losses), {k: np.array(v) for k, v in grads.items()}

    def evaluations(self, draws: int, seed: int) -> np.ndarray:
        """``draws`` values of ``-svi.evaluate_loss(x)`` with the tunable guide."""
        pyro, torch = self.pyro, self.torch
        pyro.set_rng_seed(seed)
        pyro.clear_param_store()
        for name, value in PARAMS.items():
            pyro.param(name, torch.tensor(value))
        nvil = self.NvilELBO(max_plate_nesting=1)
        svi = pyro.infer.SVI(self.model, nvil.tunable(self.guide), pyro.optim.Adam({}), nvil)
        return np.array([-svi.evaluate_loss(torch.tensor(X)) for _ in range(draws)])

    def missing_baseline(self) -> None:
        self.pyro.clear_param_store()
        for name, value in PARAMS.items():
            self.pyro.param(name, self.torch.tensor(value))
        nvil = self.NvilELBO(max_plate_nesting=1)
        nvil.loss_and_grads(self.model, self.guide, self.torch.tensor(X))


class NumpyroNvil:
    """Draws of the NVIL loss and its gradient, NumPyro (float64 under ``enable_x64``)."""

    name = "numpyro"

    def __init__(self):
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        from numpyro_concrete.estimators.nvil import NvilELBO

        self.jax, self.jnp, self.NvilELBO = jax, jnp, NvilELBO
        self.size = None  # the data plate's full size: x is a minibatch of it
        self.global_latent = False

        def model(x):
            theta, w, shift = numpyro.param("theta", None), numpyro.param("w", None), 0.0
            if self.global_latent:
                theta_g = numpyro.param("theta_g", None)
                g = numpyro.sample("g", dist.Bernoulli(logits=theta_g).to_event(1))
                shift = numpyro.param("v", None) * g
            with numpyro.plate("data", self.size or x.shape[0], subsample_size=x.shape[0]):
                z = numpyro.sample("z", dist.Bernoulli(logits=theta).to_event(1))
                mean = (z * w).sum(-1, keepdims=True) + shift
                numpyro.sample("x", dist.Normal(mean, 1.0).to_event(1), obs=x)

        def guide(x):
            a, c = numpyro.param("a", None), numpyro.param("c", None)
            if self.global_latent:
                a_g = numpyro.param("a_g", None)
                numpyro.sample("g", dist.Bernoulli(logits=a_g).to_event(1))
            with numpyro.plate("data", self.size or x.shape[0], subsample_size=x.shape[0]):
                numpyro.sample("z", dist.Bernoulli(logits=a * x + c).to_event(1))

        self.model, self.guide = model, guide

    def draws(
        self, batches: int, particles: int, seed: int, params: dict = PARAMS
    ) -> tuple[np.ndarray, dict]:
        jax, jnp = self.jax, self.jnp
        from numpyro import handlers

        self.global_latent = "v" in params
        with jax.enable_x64(True):
            nvil = self.NvilELBO(num_particles=particles)
            guide = nvil.tunable(self.guide)
            x = jnp.asarray(X)
            params = {k: jnp.asarray(v) for k, v in params.items()}
            # the baseline network's starting values, as SVI.init would draw them
            seeded = handlers.substitute(handlers.seed(guide, 0), data=params)
            trace = handlers.trace(seeded).get_trace(x)
            fixed = {
                name: site["value"]
                for name, site in trace.items()
                if site["type"] == "param" and name not in params
            }
            mean, var, steps = MOMENTS
            fixed["nvil_moments"] = {
                "mean": jnp.asarray(mean), "var": jnp.asarray(var), "steps": jnp.asarray(steps)
            }  # fmt: skip

            def loss(params, key):
                return nvil.loss(key, {**params, **fixed}, self.model, guide, x)

            keys = jax.random.split(jax.random.PRNGKey(seed), batches)
            values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss), (None, 0)))(params, keys)
            return np.asarray(values), {k: -np.asarray(v) for k, v in grads.items()}

    def evaluations(self, draws: int, seed: int) -> np.ndarray:
        """``draws`` values of ``-svi.evaluate(state, x)`` with the tunable guide, each
        from another key."""
        jax, jnp = self.jax, self.jnp
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        with jax.enable_x64(True):
            nvil = self.NvilELBO()
            x = jnp.asarray(X)
            params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
            svi = SVI(self.model, nvil.tunable(self.guide), Adam(0.0), nvil)
            state = svi.init(jax.random.PRNGKey(seed), x, init_params=params)

            def evaluate(key):
                return -svi.evaluate(state._replace(rng_key=key), x)

            keys = jax.random.split(jax.random.PRNGKey(seed + 1), draws)
            return np.asarray(jax.jit(jax.vmap(evaluate))(keys))

    def missing_baseline(self) -> None:
        with self.jax.enable_x64(True):
            params = {k: self.jnp.asarray(v) for k, v in PARAMS.items()}
            self.NvilELBO().loss(
                self.jax.random.PRNGKey(0), params, self.model, self.guide, self.jnp.asarray(X)
            )


@pytest.fixture(params=[PyroNvil, NumpyroNvil], ids=lambda cls: cls.name)
def backend(request):
    return request.param()


def _z_scores(draws: np.ndarray, expected: np.ndarray) -> np.ndarray:
    se = draws.std(0, ddof=1) / math.sqrt(len(draws))
    return (draws.mean(0) - expected) / se


def test_nvil_gradient_is_the_exact_discrete_elbo_gradient(backend):
    """Model parameters: the ELBO's gradient; guide parameters: the same divided by
    ``max(1, sigma)``, sigma = 2 the running standard deviation."""
    _, grads = backend.draws(batches=40, particles=2000, seed=1)
    exact = exact_gradient()
    sigma = math.sqrt(MOMENTS[1])
    for name in MODEL + GUIDE:
        expected = exact[name] / (sigma if name in GUIDE else 1.0)
        z = _z_scores(grads[name], expected)
        assert np.all(np.abs(z) < 4.5), (name, grads[name].mean(0), expected, z)
        assert np.abs(expected).max() > 0.05  # the check can fail: gradients are not ~0


def test_nvil_gradient_under_a_subsampled_data_plate_carries_its_scale_once(backend):
    """The two points as a minibatch of a plate of four: every density is scaled by
    ``N / B = 2``, so the gradient is twice the two points' (the guide's part divided by
    ``max(1, sigma)`` as before); a score scaled as well would make the guide's four
    times."""
    backend.size = 2 * len(X)
    _, grads = backend.draws(batches=40, particles=2000, seed=3)
    exact = exact_gradient()
    sigma = math.sqrt(MOMENTS[1])
    for name in MODEL + GUIDE:
        expected = 2 * exact[name] / (sigma if name in GUIDE else 1.0)
        z = _z_scores(grads[name], expected)
        assert np.all(np.abs(z) < 4.5), (name, grads[name].mean(0), expected, z)


def test_nvil_value_is_the_negative_discrete_elbo(backend):
    losses, _ = backend.draws(batches=20, particles=500, seed=2)
    z = _z_scores(-losses[:, None], np.array([exact_elbo(PARAMS)]))
    assert abs(z[0]) < 4.5, (-losses.mean(), exact_elbo(PARAMS))


def test_nvil_refuses_a_guide_without_its_baseline(backend):
    with pytest.raises(ValueError, match="tunable"):
        backend.missing_baseline()


def test_nvil_gradient_with_a_global_latent_is_the_exact_gradient(backend):
    """A latent ``g`` outside the data plate: the ELBO is one term, and the baseline of
    each row of the (default) input is summed into its baseline."""
    _, grads = backend.draws(batches=40, particles=2000, seed=4, params=GLOBAL)
    exact = exact_gradient(GLOBAL)
    sigma = math.sqrt(MOMENTS[1])
    for name in GLOBAL_MODEL + GLOBAL_GUIDE:
        expected = exact[name] / (sigma if name in GLOBAL_GUIDE else 1.0)
        z = _z_scores(grads[name], expected)
        assert np.all(np.abs(z) < 4.5), (name, grads[name].mean(0), expected, z)


def test_nvil_evaluates_the_negative_discrete_elbo_through_svi(backend):
    """``svi.evaluate_loss`` (Pyro) / ``svi.evaluate`` (NumPyro, which passes the
    parameters without the running moments) with the tunable guide."""
    values = backend.evaluations(draws=2000, seed=5)
    z = _z_scores(values[:, None], np.array([exact_elbo(PARAMS)]))
    assert abs(z[0]) < 4.5, (values.mean(), exact_elbo(PARAMS))
