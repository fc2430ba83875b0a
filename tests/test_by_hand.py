"""The hand-written estimators of ``benchmarks/by_hand.py`` compute the library's estimators.

``benchmarks/estimators.py`` times each library estimator against its version written by
hand with the PPL's generic machinery; the ratio means something only if both compute
the same estimator.  On a small sigmoid belief net (8 latents, 16 pixels, 4 images) at
fixed parameters, many draws of the gradient of every parameter (guide and model) from
each side must agree in distribution: the means within Monte Carlo error (two-sample
z-scores) and the summed per-draw variances within sampling error of each other (an
unbiased estimator of a different construction, e.g. one cost for the whole batch instead
of one per image, has the same mean and a different variance).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.xla_options import FAST_COMPILE

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is a folder of scripts, not a package: load by_hand.py by path.
_spec = importlib.util.spec_from_file_location("benchmarks_by_hand", ROOT / "benchmarks/by_hand.py")
by_hand = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(by_hand)

DRAWS = 1000
LATENTS, PIXELS, IMAGES = 8, 16, 4
K = 3  # VIMCO's samples
#: |z| above this fails; over the ~290 z-scores of a case a correct pair of estimators
#: exceeds it with probability below 2e-3 (Bonferroni on the normal tail).
Z_LIMIT = 4.5
#: the ratio of summed variances; its sampling error at DRAWS draws is about 5 per cent.
VARIANCE_RATIO = (0.8, 1.0 / 0.8)
ESTIMATORS = ("RebarELBO", "DisarmELBO", "VimcoELBO", "score function")


def _images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((IMAGES, PIXELS)) < rng.random(PIXELS)).astype(np.float32)


def _library(package, score_function, name: str):
    """The library's loss for ``name``: ``package`` is ``pyro_concrete`` or
    ``numpyro_concrete``, ``score_function`` the PPL's ``TraceGraph_ELBO``."""
    if name == "score function":
        return score_function()
    options = {"RebarELBO": {"tune": False}, "VimcoELBO": {"num_particles": K}}
    return getattr(package, name)(**options.get(name, {}))


def _pyro_draws(name: str) -> dict[str, np.ndarray]:
    """``{"library": (DRAWS, P), "by hand": (DRAWS, P)}`` gradients of every parameter."""
    import pyro
    import torch
    from pyro.infer import TraceGraph_ELBO

    import pyro_concrete as pc
    from pyro_concrete.problems import SigmoidBeliefNet

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    sbn = SigmoidBeliefNet(latents=(LATENTS,), hidden=None, observed=PIXELS)
    library = _library(pc, TraceGraph_ELBO, name)
    x = torch.tensor(_images())
    params = list(sbn.parameters())
    out = {}
    # by hand, the model's Bernoulli sites score REBAR's relaxed values: no support checks
    with pyro.validation_enabled(False):
        for side, loss_and_grads in (
            ("library", library.loss_and_grads),
            ("by hand", by_hand.pyro_estimators(K)[name]),
        ):
            draws = []
            for _ in range(DRAWS):
                for p in params:
                    p.grad = None
                loss_and_grads(sbn.model, sbn.guide, x)
                draws.append(torch.cat([p.grad.reshape(-1) for p in params]).numpy().copy())
            out[side] = np.array(draws, np.float64)
    return out


def _numpyro_draws(name: str) -> dict[str, np.ndarray]:
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer import TraceGraph_ELBO

    import numpyro_concrete as nc
    from numpyro_concrete.problems import SigmoidBeliefNet

    sbn = SigmoidBeliefNet(latents=(LATENTS,), hidden=None, observed=PIXELS)
    x = jnp.asarray(_images())
    params = {
        k: site["value"]
        for program in (sbn.model, sbn.guide)
        for k, site in handlers.trace(handlers.seed(program, 0)).get_trace(x).items()
        if site["type"] == "param"
    }
    library = _library(nc, TraceGraph_ELBO, name)
    out = {}
    for side, loss, seed in (
        ("library", library.loss, 1),
        ("by hand", by_hand.numpyro_estimators(K)[name], 2),
    ):

        def grad(key, loss=loss):
            g = jax.grad(lambda p: loss(key, p, sbn.model, sbn.guide, x))(params)
            return jnp.concatenate([g[k].ravel() for k in sorted(g)])

        keys = jax.random.split(jax.random.PRNGKey(seed), DRAWS)
        out[side] = np.asarray(
            jax.jit(jax.vmap(grad), compiler_options=FAST_COMPILE)(keys), np.float64
        )
    return out


DRAWS_OF = {"pyro": _pyro_draws, "numpyro": _numpyro_draws}


@pytest.mark.slow
@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("backend", tuple(DRAWS_OF))
def test_by_hand_estimator_has_the_library_estimators_mean_and_variance(backend, name):
    draws = DRAWS_OF[backend](name)
    library, mine = draws["library"], draws["by hand"]
    se = np.sqrt((library.var(0, ddof=1) + mine.var(0, ddof=1)) / DRAWS)
    z = np.where(se > 0, (library.mean(0) - mine.mean(0)) / np.where(se > 0, se, 1), 0.0)
    assert np.abs(z).max() < Z_LIMIT, f"largest |z| {np.abs(z).max():.2f}"
    ratio = mine.var(0).sum() / library.var(0).sum()
    assert VARIANCE_RATIO[0] < ratio < VARIANCE_RATIO[1], f"variance ratio {ratio:.3f}"
