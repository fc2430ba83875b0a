"""``StructuredPredictionNet`` in both packages, stated once: the guide is the model's
conditional prior with the same parameters, so the importance ratio of the pair is exactly
``p(y | z_L)``, the likelihood of the bottom half, and neither reads the bottom half to
draw its latents.  The reference likelihood is computed here in float64 numpy from the
trained-parameter values."""

import numpy as np
import pytest

HALF, LATENTS = 6, (5, 4)
X = (np.random.default_rng(0).random((3, 2 * HALF)) < 0.4).astype(np.float32)


class PyroSP:
    name = "pyro"

    def traces(self, x, seed=0):
        """(model trace, guide trace) as dicts site -> (value, log_prob), and the last
        layer's weight and bias (numpy)."""
        import pyro
        import torch
        from pyro import poutine

        from pyro_concrete.problems import StructuredPredictionNet

        torch.manual_seed(0)
        sp = StructuredPredictionNet(latents=LATENTS, observed=2 * HALF)
        pyro.set_rng_seed(seed)
        x = torch.as_tensor(x)
        guide = poutine.trace(sp.guide).get_trace(x)
        model = poutine.trace(poutine.replay(sp.model, trace=guide)).get_trace(x)
        out = []
        for trace in (model, guide):
            trace.compute_log_prob()
            out.append(
                {
                    name: (site["value"].numpy(), site["log_prob"].detach().double().numpy())
                    for name, site in trace.nodes.items()
                    if site["type"] == "sample" and name != "data"  # not the plate's site
                }
            )
        last = sp.prior[-1][0]
        return *out, last.weight.detach().numpy().T, last.bias.detach().numpy()


class NumpyroSP:
    name = "numpyro"

    def traces(self, x, seed=0):
        import jax
        from numpyro import handlers

        from numpyro_concrete.problems import StructuredPredictionNet

        sp = StructuredPredictionNet(latents=LATENTS, observed=2 * HALF)
        x = jax.numpy.asarray(x)
        guide = handlers.trace(handlers.seed(sp.guide, seed)).get_trace(x)
        params = {n: s["value"] for n, s in guide.items() if s["type"] == "param"}
        replayed = handlers.replay(handlers.seed(sp.model, 1), trace=guide)
        model = handlers.trace(handlers.substitute(replayed, data=params)).get_trace(x)
        out = [
            {
                name: (np.asarray(s["value"]), np.asarray(s["fn"].log_prob(s["value"]), np.float64))
                for name, s in trace.items()
                if s["type"] == "sample"
            }
            for trace in (model, guide)
        ]
        last = len(LATENTS)
        w, b = (model[f"prior{last}_{p}0"]["value"] for p in "wb")
        return *out, np.asarray(w), np.asarray(b)


@pytest.fixture(params=[PyroSP, NumpyroSP], ids=lambda cls: cls.name)
def backend(request):
    return request.param()


def test_importance_ratio_is_the_bottom_half_likelihood(backend):
    model, guide, w, b = backend.traces(X)
    latent = [f"z{i}" for i in range(1, len(LATENTS) + 1)]
    assert sorted(guide) == latent and sorted(model) == sorted([*latent, "x"])
    log_ratio = model["x"][1] + sum(model[z][1] - guide[z][1] for z in latent)
    np.testing.assert_array_equal(model["x"][0], X[:, HALF:])
    logits = model[latent[-1]][0].astype(np.float64) @ w + b
    y = X[:, HALF:]
    reference = (y * logits - np.logaddexp(0.0, logits)).sum(-1)
    np.testing.assert_allclose(log_ratio, reference, rtol=1e-5, atol=1e-5)


def test_latents_do_not_read_the_bottom_half(backend):
    flipped = X.copy()
    flipped[:, HALF:] = 1 - flipped[:, HALF:]
    guide, flipped_guide = backend.traces(X)[1], backend.traces(flipped)[1]
    for name in guide:
        np.testing.assert_array_equal(guide[name][0], flipped_guide[name][0])
        np.testing.assert_allclose(guide[name][1], flipped_guide[name][1])
