"""What is NumPyro's own in the relaxation layer of ``numpyro_concrete``.

The workflow both backends share is stated once, in ``tests/relax_suite.py``; here are
NumPyro's handlers (``seed``, and ``substitute`` setting sample values) around and inside
``relax``, ``Predictive`` in parallel, ``jit`` of temperatures and schedules, ``scan``
with a hand-written guide, ``sample_posterior``, ``cond``, float64 (under
``jax.enable_x64``), and the compiled program of ``discrete_bound``.  Every expectation
is computed independently of the code under test (closed forms, the float64 references
of ``tests/references.py``); seeds are fixed; slow tests are marked ``slow``.

Cost: JAX compiles every primitive the first time it runs eagerly with a given shape,
and every jitted SVI loop once; the tests reuse shapes and share what they can.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.util import log_density
from numpyro.optim import Adam
from scipy.special import expit, softmax

import numpyro_concrete as nc
from tests.relax_backends import backend
from tests.relax_suite import (
    AUTO_SHAPES,
    C_PROBS,
    SUBSAMPLE_DATA,
    Y_C,
    Y_Z,
    auto_model,
    discrete_only_model,
    subsampled_model,
    two_sites,
    two_sites_log_density,
)


def _traced(fn):
    """``(traces, jax.jit(fn))``: ``traces`` gains an entry each time ``jit`` traces ``fn``
    (a new compilation), counted in Python: jit's private ``_cache_size()`` read 0 after
    some other tests had run in the same process."""
    traces = []

    def counted(*args, **kwargs):
        traces.append(None)
        return fn(*args, **kwargs)

    return traces, jax.jit(counted)


def _np(x):
    return np.asarray(x, dtype=np.float64)


def _key(seed):
    return jax.random.PRNGKey(seed)


def _trace(fn, *args, rng_seed=0, **kwargs):
    return handlers.trace(handlers.seed(fn, rng_seed=rng_seed)).get_trace(*args, **kwargs)


def _run_traced(fn, *args, rng_seed=0, **kwargs):
    """``(what fn returns, its trace)`` under ``seed(rng_seed)``."""
    tracer = handlers.trace(handlers.seed(fn, rng_seed=rng_seed))
    return tracer(*args, **kwargs), tracer.trace


def _site_base(site):
    fn = site["fn"]
    while isinstance(fn, dist.Independent | dist.ExpandedDistribution | dist.MaskedDistribution):
        fn = fn.base_dist
    return fn


# ---------------------------------------------------------------------------------------
# 5. Semantics of relax
# ---------------------------------------------------------------------------------------

B = backend("numpyro")  # the adapter of the relaxation suite
two_site_model = two_sites(B)


def test_substitute_outside_relax_provides_log_space_values_and_model_receives_their_image():
    """In NumPyro ``substitute`` sets sample values (it is how ``log_density``, MCMC and
    ``Predictive`` feed a model): outside ``relax`` it provides the log-space values; the
    sites stay latent."""
    data = {"z": jnp.array(Y_Z), "c": jnp.array(Y_C)}
    model = handlers.substitute(nc.relax(two_site_model), data=data)
    (z, c), trace = _run_traced(model)
    for name in ("z", "c"):
        assert not trace[name]["is_observed"], name
        np.testing.assert_array_equal(trace[name]["value"], data[name])
    assert type(trace["z"]["fn"]) is nc.LogitBinaryConcrete
    assert float(z) == pytest.approx(float(expit(Y_Z)), rel=1e-6)
    np.testing.assert_allclose(_np(c), np.exp(Y_C), rtol=1e-6)
    log_joint, _ = log_density(nc.relax(two_site_model), (), {}, data)
    assert float(log_joint) == pytest.approx(two_sites_log_density(Y_Z, Y_C), abs=1e-5)


def test_substitute_inside_relax_keeps_the_substituted_discrete_value():
    """``relax(substitute(model, {"z": 1.0}))``: the inner handler fixed the *discrete*
    site at 1, as ``relax(condition(...))`` does; the model must receive 1, not a value
    read as a logit."""
    substituted = handlers.substitute(two_site_model, data={"z": 1.0})
    (z, _), trace = _run_traced(nc.relax(substituted))
    assert float(z) == 1.0
    assert float(trace["z"]["value"]) == 1.0
    assert type(trace["c"]["fn"]) is nc.ExpConcrete


def test_seed_handler_makes_relaxed_traces_reproducible():
    relaxed = nc.relax(two_site_model)
    seeded = [_run_traced(relaxed, rng_seed=11) for _ in range(2)]
    other = _trace(relaxed, rng_seed=12)
    for name in ("z", "c"):
        np.testing.assert_array_equal(seeded[0][1][name]["value"], seeded[1][1][name]["value"])
        assert not np.array_equal(seeded[0][1][name]["value"], other[name]["value"])
    for a, b in zip(seeded[0][0], seeded[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    # a key array works as well as an integer seed
    by_key = handlers.seed(relaxed, rng_seed=_key(11))()
    for a, b in zip(seeded[0][0], by_key, strict=True):
        np.testing.assert_array_equal(a, b)


def plated_model():
    with numpyro.plate("data", 3):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        c = numpyro.sample("c", nc.OneHotCategorical(logits=jnp.zeros(4)))
    return z, c


def test_predictive_in_parallel_returns_log_space_sites_and_the_model_receives_their_image():
    """``Predictive(parallel=True)`` (a vmap over guide samples substituted into the model,
    here jitted): the relaxed sites come back in log space, and deterministic sites show
    that the model received sigmoid / exp of them."""

    def model():
        z, c = plated_model()
        numpyro.deterministic("received_z", z)
        numpyro.deterministic("received_c", c)

    def guide():
        with numpyro.plate("data", 3):
            numpyro.sample("z", nc.LogitBinaryConcrete(0.5, logits=jnp.array([-1.0, 0.0, 1.0])))
            numpyro.sample("c", nc.ExpConcrete(0.5, logits=jnp.zeros(4)))

    sites = ["z", "c", "received_z", "received_c"]
    predictive = Predictive(
        nc.relax(model), guide=guide, num_samples=5, parallel=True, return_sites=sites
    )
    out = jax.jit(predictive)(_key(1))
    assert out["z"].shape == (5, 3) and out["c"].shape == (5, 3, 4)
    np.testing.assert_allclose(_np(out["received_z"]), expit(_np(out["z"])), rtol=1e-6)
    np.testing.assert_allclose(_np(out["received_c"]), np.exp(_np(out["c"])), rtol=1e-5)


def test_a_temperature_may_be_traced_under_jit_and_differentiated():
    """With the noise fixed by the key, the logistic node is ``y = (logit + L) / lam``:
    ``lam * y`` does not depend on ``lam`` and ``dy / dlam = -y / lam``."""

    def node(temperature):
        trace = _trace(nc.relax(two_site_model, temperature=temperature), rng_seed=7)
        return trace["z"]["value"], trace["z"]["fn"].temperature, trace["c"]["fn"].temperature

    traced, jitted = _traced(node)
    values = {lam: jitted(jnp.float32(lam)) for lam in (0.25, 0.5, 2.0)}
    assert len(traced) == 1
    for lam, (y, lam_z, lam_c) in values.items():
        assert float(lam_z) == pytest.approx(lam) and float(lam_c) == pytest.approx(lam)
        assert lam * float(y) == pytest.approx(0.5 * float(values[0.5][0]), rel=1e-5)
    dy = jax.jit(jax.grad(lambda lam: node(lam)[0]))(jnp.float32(0.5))
    assert float(dy) == pytest.approx(-float(values[0.5][0]) / 0.5, rel=1e-5)


def float64_model():
    f64 = jnp.float64
    with numpyro.plate("data", 2):
        z = numpyro.sample("z", dist.Bernoulli(jnp.array([0.3, 0.6], f64)))
        c = numpyro.sample("c", nc.OneHotCategorical(jnp.array(C_PROBS, f64)))
        mean = z + nc.select(jnp.array([-1.0, 0.0, 1.0], f64), c)
        numpyro.sample("x", dist.Normal(mean, 1.0), obs=jnp.array([0.5, -0.5], f64))


def test_a_float64_model_relaxes_to_float64_sites():
    with jax.enable_x64(True):
        trace = _trace(nc.relax(float64_model))
        for name in ("z", "c"):
            assert trace[name]["fn"].logits.dtype == jnp.float64, name
            assert trace[name]["fn"].temperature.dtype == jnp.float64, name
            assert trace[name]["value"].dtype == jnp.float64, name


@pytest.mark.slow  # x64 recompiles everything: NumPyro's eager autoguide setup included
def test_autorelaxed_trains_a_float64_model_in_float64():
    with jax.enable_x64(True):
        relaxed = nc.relax(float64_model)
        svi = SVI(relaxed, nc.AutoRelaxed(relaxed), Adam(0.05), Trace_ELBO())
        result = svi.run(_key(0), 2, progress_bar=False)
        assert result.losses.dtype == jnp.float64 and np.isfinite(_np(result.losses)).all()
        assert all(value.dtype == jnp.float64 for value in result.params.values())


def test_exponential_decay_under_jit_with_a_traced_step():
    schedule = nc.exponential_decay(2.0, 0.01, 0.1)
    traced, jitted = _traced(schedule)
    steps = [0, 50, 299, 300, 1000]
    got = [float(jitted(jnp.int32(step))) for step in steps]
    assert len(traced) == 1
    expected = [max(0.1, 2.0 * math.exp(-0.01 * step)) for step in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # inside a scan, as a training loop would use it
    _, scanned = jax.lax.scan(lambda c, step: (c, schedule(step)), 0, jnp.array(steps))
    np.testing.assert_allclose(_np(scanned), expected, rtol=1e-6)


def test_a_temperature_schedule_through_jitted_svi_update_compiles_once():
    """``svi.update(state, relax_step=step)`` under ``jax.jit``: the step is a traced
    argument and both schedules are evaluated inside the trace, so ten steps compile
    once, whether the update is jitted or called from a jitted training step; the
    temperatures reach model and guide (from one state and key, the ELBO changes with
    the step)."""
    relaxed = nc.relax(two_site_model, temperature=nc.exponential_decay(1.0, 0.05, 0.3))
    guide = nc.AutoRelaxed(relaxed, temperature=nc.exponential_decay(2.0, 0.05, 0.5))
    svi = SVI(relaxed, guide, Adam(0.05), Trace_ELBO())
    state = svi.init(_key(0))

    traced, update = _traced(svi.update)
    for step in range(5):
        state, loss = update(state, relax_step=step)
        assert math.isfinite(float(loss))
    assert len(traced) == 1

    def train_step(state, step):
        return svi.update(state, relax_step=step)

    traced_step, train_step = _traced(train_step)
    for step in range(5, 10):
        state, loss = train_step(state, jnp.int32(step))
        assert math.isfinite(float(loss))
    assert len(traced_step) == 1
    losses = [float(update(state, relax_step=step)[1]) for step in (0, 30)]
    assert losses[0] != losses[1] and len(traced) == 1


def test_a_fresh_guide_reads_the_probabilities_of_saved_parameters():
    """A guide rebuilt in a new session, never run, reads ``probs`` of saved parameters
    (it traces the model once, with the arguments given)."""

    def model(x):
        with numpyro.plate("data", 3):
            numpyro.sample("z", dist.Bernoulli(0.5))
            numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    params = {"z_auto_log_alpha": jnp.array([-1.0, 0.0, 2.0])}
    probs = nc.AutoRelaxed(nc.relax(model)).probs(params, jnp.zeros(3))
    np.testing.assert_allclose(_np(probs["z"]), expit([-1.0, 0.0, 2.0]), rtol=1e-6)


def test_svi_init_with_the_same_key_gives_the_same_parameters_every_time():
    """A second ``svi.init`` on the same guide, after its prototype exists, starts from the
    same ``log_alpha`` as the first, as a new guide given that key does; as in NumPyro's
    ``AutoNormal``, the initial values are drawn once, with the guide's prototype."""
    model = nc.relax(two_site_model)

    def init(guide, seed):
        svi = SVI(model, guide, Adam(0.1), Trace_ELBO())
        return {k: _np(v) for k, v in svi.get_params(svi.init(_key(seed))).items()}

    guide = nc.AutoRelaxed(model)
    first, again = init(guide, 3), init(guide, 3)
    fresh, other = init(nc.AutoRelaxed(model), 3), init(nc.AutoRelaxed(model), 4)
    for name, value in first.items():
        np.testing.assert_array_equal(again[name], value)
        np.testing.assert_array_equal(fresh[name], value)
    assert not np.array_equal(other["z_auto_log_alpha"], first["z_auto_log_alpha"])


def test_a_hmm_written_with_scan_trains_with_a_hand_written_guide_that_uses_scan():
    """The guide's own ``scan`` samples ``ExpConcrete`` nodes step by step, with
    per-step logits from ``numpyro.param``: ``Trace_ELBO`` replays them into the relaxed
    model's ``scan`` (one site ``"z"`` of shape ``(T, 2)`` in both) and trains."""
    from numpyro.contrib.control_flow import scan

    ys = jnp.array([-2.1, -1.5, 2.2, 1.9, 2.5, -1.8])
    model = B.hmm("scan", [-2.0, 2.0], [[0.9, 0.1], [0.15, 0.85]], [0.5, 0.5])

    def guide(ys):
        logits = numpyro.param("logits", jnp.zeros((len(ys), 2)))

        def step(carry, logit):
            numpyro.sample("z", nc.ExpConcrete(2 / 3, logits=logit))
            return carry, None

        scan(step, None, logits)

    svi = SVI(nc.relax(model), guide, Adam(0.1), Trace_ELBO())
    result = svi.run(_key(0), 300, ys, progress_bar=False)
    assert np.isfinite(_np(result.losses)).all()
    states = jax.nn.softmax(result.params["logits"], -1).argmax(-1)
    np.testing.assert_array_equal(_np(states), (_np(ys) > 0).astype(float))


# ---------------------------------------------------------------------------------------
# 7. AutoRelaxed
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auto_guide():
    """``(relaxed auto_model at prior temperature 0.5, AutoRelaxed with its defaults, its
    initial parameters)``; built once (the first call of an autoguide runs NumPyro's
    ``initialize_model``, expensive eagerly), never mutated by the tests."""
    relaxed = nc.relax(auto_model(B), temperature=0.5)
    guide = nc.AutoRelaxed(relaxed)
    return relaxed, guide, B.init_params(guide)


def test_autorelaxed_probs_are_a_pure_function_of_params_that_jits(auto_guide):
    """``probs(params)`` reads the parameters given, not a store: it works under ``jit``
    and on parameters the guide never produced."""
    _, guide, params = auto_guide
    shifted = {k: v + 1.0 if k.endswith("_log_alpha") else v for k, v in params.items()}
    probs = jax.jit(guide.probs)(shifted)
    log_alpha = B.log_alpha(params)
    np.testing.assert_allclose(_np(probs["local"]), expit(log_alpha["local"] + 1.0), rtol=1e-6)
    np.testing.assert_allclose(_np(probs["cat"]), softmax(log_alpha["cat"] + 1.0), rtol=1e-5)


def test_autorelaxed_sample_posterior_draws_hard_samples_of_the_discrete_posterior(auto_guide):
    """``sample_posterior`` draws every relaxed site from the guide's zero-temperature
    limit, in the discrete model's representation, with a leading sample dimension:
    ``P(z = 1) = sigmoid(log_alpha)`` and ``P(c = e_k) = softmax(log_alpha)_k``."""
    _, guide, params = auto_guide
    params = dict(params)
    params["vector_auto_log_alpha"] = jnp.array([-1.0, 2.0])
    params["cat_auto_log_alpha"] = jnp.array([0.5, -0.5, 0.0, 1.0])
    n = 4000
    samples = guide.sample_posterior(_key(3), params, sample_shape=(n,))
    assert {k: v.shape[1:] for k, v in samples.items() if k in AUTO_SHAPES} == AUTO_SHAPES
    assert samples["w"].shape == (n,)
    y, yc = _np(samples["vector"]), _np(samples["cat"])
    assert y.shape == (n, 2) and yc.shape == (n, 4)
    assert set(np.unique(y)) <= {0.0, 1.0} and set(np.unique(yc)) <= {0.0, 1.0}
    np.testing.assert_array_equal(_np(samples["local_cat"]).sum(-1), 1.0)
    for p_hat, p in zip(y.mean(0), expit([-1.0, 2.0]), strict=True):
        assert abs(p_hat - p) < 4 * math.sqrt(p * (1 - p) / n), (p_hat, p)
    counts = yc.mean(0)
    expected = softmax([0.5, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(counts, expected, atol=4 * math.sqrt(0.25 / n))


def test_autorelaxed_sample_posterior_on_a_model_whose_latent_sites_are_all_discrete():
    """The continuous part is empty (NumPyro's ``AutoNormal`` raised ``IndexError`` in
    ``sample_posterior`` without sites): the samples are the relaxed sites' alone, hard,
    with ``P(z = 1) = sigmoid(log_alpha)``."""
    model = nc.relax(discrete_only_model(backend("numpyro")), temperature=0.5)
    guide = nc.AutoRelaxed(model)
    svi = SVI(model, guide, Adam(0.0), Trace_ELBO())
    params = svi.get_params(svi.init(_key(0)))
    params = dict(params, z_auto_log_alpha=jnp.array([-1.0, 0.0, 2.0]))
    n = 4000
    samples = guide.sample_posterior(_key(1), params, sample_shape=(n,))
    assert set(samples) == {"z", "c"}
    z, c = _np(samples["z"]), _np(samples["c"])
    assert z.shape == (n, 3) and c.shape == (n, 4)
    assert set(np.unique(z)) <= {0.0, 1.0}
    np.testing.assert_array_equal(c.sum(-1), 1.0)
    p = expit([-1.0, 0.0, 2.0])
    assert (np.abs(z.mean(0) - p) < 4 * np.sqrt(p * (1 - p) / n)).all(), (z.mean(0), p)


def test_autorelaxed_accepts_a_model_with_deterministic_sites():
    """``numpyro.deterministic`` sites are common in NumPyro models; NumPyro's own
    ``AutoNormal`` ignores them, and so must AutoRelaxed."""

    def model():
        w = numpyro.sample("w", dist.Normal(0.0, 1.0))
        numpyro.deterministic("two_w", 2 * w)
        with numpyro.plate("data", 3):
            z = numpyro.sample("z", dist.Bernoulli(0.5))
            numpyro.deterministic("received_z", z)

    trace = _trace(nc.AutoRelaxed(nc.relax(model)))
    assert type(_site_base(trace["z"])) is nc.LogitBinaryConcrete
    assert type(_site_base(trace["w"])) is dist.Normal
    assert "two_w" not in trace and "received_z" not in trace


def test_autorelaxed_sample_posterior_draws_every_element_of_a_subsampled_plate():
    data = jnp.array(SUBSAMPLE_DATA)
    guide = nc.AutoRelaxed(nc.relax(subsampled_model(B)))
    params = B.init_params(guide, data)
    assert guide.sample_posterior(_key(0), params, data)["z"].shape == (100,)


def test_the_branches_of_cond_are_relaxed():
    from numpyro.contrib.control_flow import cond

    def model(flag):
        return cond(
            flag,
            lambda _: numpyro.sample("z", dist.Bernoulli(0.3)),
            lambda _: numpyro.sample("z", dist.Bernoulli(0.6)),
            None,
        )

    for flag, p in ((True, 0.3), (False, 0.6)):
        z, trace = _run_traced(nc.relax(model, temperature=0.4), jnp.array(flag))
        assert type(trace["z"]["fn"]) is nc.LogitBinaryConcrete
        assert float(trace["z"]["fn"].logits) == pytest.approx(math.log(p / (1 - p)), 1e-5)
        assert float(z) == pytest.approx(float(expit(_np(trace["z"]["value"]))), rel=1e-6)


# --- discrete_bound's compiled program ------------------------------------------------------


def _counting_bound_problem():
    """A model/guide pair whose Python bodies count their runs (one per trace)."""
    runs = []

    def model(y, scale=1.0):
        runs.append(None)
        with numpyro.plate("data", y.shape[0]):
            z = numpyro.sample("z", dist.Bernoulli(0.3))
            numpyro.sample("y", dist.Normal(2.0 * z, scale), obs=y)

    def guide(y, scale=1.0):
        logits = numpyro.param("logits", jnp.zeros(y.shape[0]))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("z", nc.BinaryConcrete(0.5, logits=logits))

    return model, guide, runs


def test_discrete_bound_compiles_once_and_reuses_the_program_for_new_keys_and_params():
    model, guide, runs = _counting_bound_problem()
    y = jnp.array([0.1, 1.9, 2.2])
    bounds = []
    for i in range(3):
        params = {"logits": jnp.full(3, float(i))}
        key = jax.random.PRNGKey(i)
        bounds.append(nc.discrete_bound(key, model, guide, params, y, num_samples=8))
        assert len(runs) == i + 2  # one eager prototype per call, one trace for the program
    assert len(set(bounds)) == 3


class _Unhashable:
    """A keyword value that jit cannot key a cache on (``__eq__`` without ``__hash__``)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Unhashable) and other.value == self.value

    __hash__ = None

    def __float__(self) -> float:
        return self.value


def test_discrete_bound_takes_arguments_jit_cannot_hash():
    model, guide, _ = _counting_bound_problem()
    y, params, key = jnp.array([0.1, 1.9, 2.2]), {"logits": jnp.zeros(3)}, jax.random.PRNGKey(0)

    def scaled(model):
        return lambda y, scale: model(y, float(scale))

    plain = nc.discrete_bound(key, model, guide, params, y, scale=0.5, num_samples=8)
    odd = nc.discrete_bound(
        key, scaled(model), scaled(guide), params, y, scale=_Unhashable(0.5), num_samples=8
    )
    assert odd == pytest.approx(plain, rel=1e-6)


def test_discrete_bound_of_a_guide_jit_cannot_trace_draws_eagerly_and_warns():
    """A guide that computes with numpy on the data: the same bound, drawn eagerly."""
    model = _counting_bound_problem()[0]
    y, key = jnp.array([0.1, 1.9, 2.2]), jax.random.PRNGKey(0)

    def numpy_guide(y, scale=1.0):
        logits = jnp.asarray(np.asarray(y) - 1.0)  # numpy needs the concrete data
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("z", nc.BinaryConcrete(0.5, logits=logits))

    def jax_guide(y, scale=1.0):
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("z", nc.BinaryConcrete(0.5, logits=y - 1.0))

    with pytest.warns(UserWarning, match="cannot be compiled by jax.jit.*drawn eagerly"):
        eager = nc.discrete_bound(key, model, numpy_guide, {}, y, num_samples=8)
    compiled = nc.discrete_bound(key, model, jax_guide, {}, y, num_samples=8)
    assert eager == pytest.approx(compiled, rel=1e-6)
