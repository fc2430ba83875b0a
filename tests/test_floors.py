"""The bare JAX floors of ``benchmarks/floors_jax.py`` compute unbiased estimates of their
objectives' gradients, so that ``benchmarks/numpyro_floors.py`` times the library against
the right computation.

On a tiny sigmoid belief net (2 latent units, 4 pixels, 2 images) at fixed random
parameters, the mean of many draws of each floor's gradient in every parameter of the model
and the guide must match the exact gradient (z < 4.5): of the ELBO
``sum_n E_q[log p(x_n, b) - log q(b | x_n)]`` for REBAR, RELAX, DisARM and RLOO, of the
``K``-sample bound ``sum_n E[log (1/K) sum_k w_k]`` for VIMCO.  The objectives are computed
by enumeration in float64 numpy (every ``b``, or every ``K``-tuple of ``b``) and their
gradients by central differences, independently of the floors' code.
"""

import importlib.util
import itertools
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.special import log_expit, logsumexp

from tests.xla_options import FAST_COMPILE

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is a folder of scripts, not a package: load floors_jax.py by path.
_spec = importlib.util.spec_from_file_location(
    "benchmarks_floors_jax", ROOT / "benchmarks/floors_jax.py"
)
floors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floors)

DRAWS = 20000
LATENTS, PIXELS = 2, 4
Z_LIMIT = 4.5
SHAPES = {
    "encoder0_w0": (PIXELS, LATENTS),
    "encoder0_b0": (LATENTS,),
    "decoder0_w0": (LATENTS, PIXELS),
    "decoder0_b0": (PIXELS,),
}
X = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], np.float64)  # every pixel on somewhere
#: every value of b, (2^H, H)
CONFIGS = np.array(list(itertools.product((0.0, 1.0), repeat=LATENTS)))


def _params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {k: rng.normal(0.0, 0.8, shape) for k, shape in SHAPES.items()}


def _log_w_and_q(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(log w, log q)`` of every configuration and image, each ``(2^H, images)``."""
    logits = X @ p["encoder0_w0"] + p["encoder0_b0"]  # (N, H)
    b = CONFIGS[:, None, :]
    log_q = (b * log_expit(logits) + (1 - b) * log_expit(-logits)).sum(-1)
    a = CONFIGS @ p["decoder0_w0"] + p["decoder0_b0"]  # (2^H, D)
    log_lik = (X[None] * log_expit(a[:, None]) + (1 - X[None]) * log_expit(-a[:, None])).sum(-1)
    return log_lik - LATENTS * np.log(2.0) - log_q, log_q


def _elbo(p: dict) -> float:
    log_w, log_q = _log_w_and_q(p)
    return float((np.exp(log_q) * log_w).sum())


def _bound(p: dict, k: int) -> float:
    """``sum_n E[log (1/K) sum_k w_k]`` over every ``K``-tuple of configurations."""
    log_w, log_q = _log_w_and_q(p)
    tuples = np.array(list(itertools.product(range(len(CONFIGS)), repeat=k)))  # (T, K)
    weight = np.exp(log_q[tuples].sum(1))  # (T, N)
    return float((weight * (logsumexp(log_w[tuples], 1) - np.log(k))).sum())


def _exact_gradient(objective, p: dict, step: float = 1e-5) -> dict[str, np.ndarray]:
    out = {}
    for name, value in p.items():
        grad = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[i] += step
            down[i] -= step
            grad[i] = (objective({**p, name: up}) - objective({**p, name: down})) / (2 * step)
        out[name] = grad
    return out


def _relax_phi() -> dict[str, np.ndarray]:
    """RELAX's own quantities away from their defaults: the estimate is unbiased for any."""
    rng = np.random.default_rng(4)
    return {
        "relax_eta": np.array(0.7),
        "z1_relax_weight": rng.normal(0.0, 1.0, LATENTS),
        "z1_relax_temperature": np.array(np.log(0.7)),
    }


OBJECTIVES = {
    "RebarELBO(tune=False)": _elbo,
    "RelaxELBO": _elbo,
    "DisarmELBO": _elbo,
    f"VimcoELBO(K={floors.K})": lambda p: _bound(p, floors.K),
    f"RlooELBO(K={floors.K})": _elbo,
}


def test_every_floor_has_an_exact_reference():
    assert set(OBJECTIVES) == set(floors.SURROGATES)


@pytest.mark.parametrize("name", list(floors.SURROGATES))
def test_floor_mean_gradient_is_the_exact_gradient(name):
    p = _params()
    extra = _relax_phi() if name == "RelaxELBO" else {}
    params = {k: jax.numpy.asarray(v, jax.numpy.float32) for k, v in {**p, **extra}.items()}
    x = jax.numpy.asarray(X, jax.numpy.float32)

    def draw(key):
        g = floors.estimate(name, params, key, x)[0]
        return jax.numpy.concatenate([g[k].ravel() for k in SHAPES])

    keys = jax.random.split(jax.random.PRNGKey(0), DRAWS)
    draws = np.asarray(jax.jit(jax.vmap(draw), compiler_options=FAST_COMPILE)(keys), np.float64)
    exact = _exact_gradient(OBJECTIVES[name], p)
    exact = np.concatenate([exact[k].ravel() for k in SHAPES])
    se = draws.std(0, ddof=1) / np.sqrt(DRAWS)
    z = (draws.mean(0) - exact) / se
    assert np.abs(z).max() < Z_LIMIT, f"{name}: largest |z| {np.abs(z).max():.2f}, z = {z}"
