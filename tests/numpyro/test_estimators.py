"""The estimators' specification (tests/estimators_suite.py) against ``numpyro_concrete``."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

from numpyro_concrete.estimators.traces import DiscreteSampler
from tests.estimator_backends import NumpyroEstimators
from tests.estimators_suite import EstimatorsSuite

EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def backend():
    return NumpyroEstimators()


class TestNumpyroEstimators(EstimatorsSuite):
    draws = 4000


def test_a_bernoulli_drawn_without_z_is_the_rounding_of_the_logistic_sample():
    """DisARM and VIMCO draw a Bernoulli site without ``z`` (no logarithms): the value must
    still be ``1[l + L > 0]`` (``1[l - L > 0]`` for the antithetic sign) for the logistic
    ``L = log U - log(1 - U)`` of the site's uniform ``U`` (the first folded key, on the grid
    ``k eps + eps/2``), computed here in float64; float32 rounding may decide a tie."""
    logits = 3 * jax.random.normal(jax.random.key(0), (100_000,))
    key = jax.random.key(1)
    u = jax.random.uniform(jax.random.fold_in(key, 0), logits.shape) + EPS32 / 2
    u, exact_logits = np.asarray(u, np.float64), np.asarray(logits, np.float64)
    noise = np.log(u) - np.log1p(-u)
    for sign in (1, -1):
        sampler = DiscreteSampler(rng_key=key, sign=sign, keep_z=False)
        value = np.asarray(sampler.take("b", dist.Bernoulli(logits=logits))[1])
        assert sampler.sites["b"].z is None
        assert np.mean(value != (exact_logits + sign * noise > 0)) <= 1e-5


@pytest.mark.parametrize("loss_name", ["RebarELBO", "RelaxELBO"])
def test_a_prior_with_python_float_logits_is_relaxed(loss_name):
    """NumPyro keeps ``Bernoulli(logits=0.3)``'s logits a Python float; the relaxed passes
    score the model's site there all the same, as with the same logits as an array."""
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    import numpyro_concrete as nc

    x = jnp.array([0.3, -1.2])

    def model(x, prior):
        with numpyro.plate("data", 2):
            z = numpyro.sample("z", dist.Bernoulli(logits=prior))
            numpyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)

    def guide(x, prior):
        a = numpyro.param("a", jnp.array([0.1, -0.5]))
        with numpyro.plate("data", 2):
            numpyro.sample("z", dist.Bernoulli(logits=a))

    loss = getattr(nc, loss_name)()
    values = []
    for prior in (0.3, jnp.asarray(0.3)):
        svi = SVI(model, loss.tunable(guide), Adam(0.01), loss)
        state = svi.init(jax.random.PRNGKey(0), x, prior)
        params = svi.get_params(state)
        tuned = loss.tunable(guide)

        def objective(p, prior=prior, tuned=tuned):
            return loss.loss(jax.random.PRNGKey(1), p, model, tuned, x, prior)

        values.append(jax.grad(objective)(params)["a"])
    np.testing.assert_allclose(values[0], values[1], rtol=1e-6)
    assert np.all(np.isfinite(values[0]))


@pytest.mark.parametrize("loss_name", ["DisarmELBO", "RebarELBO"])
def test_the_loss_jits_with_its_parameters_closed_over(loss_name):
    """Evaluation code often closes over fixed parameters: under ``jax.jit`` every jnp
    operation on them is staged out, so a check on concrete values must not use jnp (the
    guide's logits here are the parameter itself, of the site's full shape)."""
    import jax.numpy as jnp
    import numpyro

    import numpyro_concrete as nc

    def model(x):
        with numpyro.plate("data", 4):
            z = numpyro.sample("z", dist.Bernoulli(logits=jnp.full(4, 0.3)))
            numpyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)

    def guide(x):
        with numpyro.plate("data", 4):
            numpyro.sample("z", dist.Bernoulli(logits=numpyro.param("a", jnp.zeros(4))))

    loss = getattr(nc, loss_name)(**({"tune": False} if loss_name == "RebarELBO" else {}))
    fixed, x = {"a": jnp.array([0.1, -0.5, 0.7, 0.2])}, jnp.array([0.3, -1.2, 2.0, 0.5])
    key = jax.random.PRNGKey(0)
    jitted = jax.jit(lambda key: loss.loss(key, fixed, model, guide, x))(key)
    np.testing.assert_allclose(jitted, loss.loss(key, fixed, model, guide, x), rtol=1e-5)


def _tuned_after(guide_loss, loss, steps: int = 5) -> dict:
    """The parameters after ``steps`` jitted SVI steps on the ``"bernoulli"`` problem, the
    guide from ``guide_loss.tunable`` and the loss ``loss``."""
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    from tests.estimator_references import problem

    params, y = problem("bernoulli")
    model, guide = NumpyroEstimators()._problem("bernoulli", params)
    y = jax.numpy.asarray(y, jax.numpy.float32)
    svi = SVI(model, guide_loss.tunable(guide), Adam(0.05), loss)
    state = svi.init(jax.random.PRNGKey(0), y)
    update = jax.jit(svi.update)
    for _ in range(steps):
        state, _ = update(state, y)
    return svi.get_params(state)


def test_what_tunable_declares_belongs_to_the_guide():
    """``SVI(model, RebarELBO().tunable(guide), optim, RebarELBO())``, two instances: the
    loss tunes ``eta`` and the temperatures along the variance's gradient, as one instance
    does (they moved along the surrogate's before)."""
    import numpyro_concrete as nc

    one = nc.RebarELBO()
    expected = _tuned_after(one, one)
    got = _tuned_after(nc.RebarELBO(), nc.RebarELBO())
    assert expected.keys() == got.keys() and "rebar_eta" in got
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, err_msg=k)


def test_a_guide_tunable_by_another_estimator_is_an_error():
    import numpyro_concrete as nc

    with pytest.raises(ValueError, match=r"RelaxELBO\(tune=True\) trains a guide from Rebar"):
        _tuned_after(nc.RebarELBO(), nc.RelaxELBO(), steps=1)


@pytest.mark.parametrize("loss_name", ["RebarELBO", "RelaxELBO", "DisarmELBO", "VimcoELBO"])
def test_svi_evaluate_gives_the_objective(loss_name):
    """``svi.evaluate`` (the loss without its gradient), tuned estimators included: a finite
    estimate of the negative objective, under ``jit``."""
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    import numpyro_concrete as nc
    from tests.estimator_references import problem

    params, y = problem("bernoulli")
    model, guide = NumpyroEstimators()._problem("bernoulli", params)
    y = jax.numpy.asarray(y, jax.numpy.float32)
    loss = getattr(nc, loss_name)()
    svi = SVI(model, loss.tunable(guide), Adam(0.05), loss)
    state = svi.init(jax.random.PRNGKey(0), y)
    assert np.isfinite(float(jax.jit(svi.evaluate)(state, y)))
