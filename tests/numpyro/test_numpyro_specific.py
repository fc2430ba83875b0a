"""What only the NumPyro package promises: pytrees, ``jit``/``vmap``/``grad``, keys,
intermediates, x64, validation through NumPyro's mechanism, and NumPyro inference
(NUTS, ``AutoNormal``, hand-written guides under ``Trace_ELBO``).

The backend-agnostic contract (densities, normalisation, shapes, ...) lives in
``tests/contract_suite.py``; cross-backend agreement in ``tests/parity``.
"""

from functools import partial

import jax
import jax.example_libraries.optimizers as jopt
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions.batch_util import vmap_over
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.util import log_density
from scipy import integrate, optimize, special, stats

import numpyro_concrete as nc
from numpyro_concrete.distributions import noise
from tests import references as R

N = 3
TEMPERATURE = np.array([0.5, 0.1])
LOGITS = np.array([[0.3, -0.5, 1.0], [0.0, 2.0, -1.0]])
HARD_KW = {"low": -0.2, "high": 1.3}

CATEGORICAL = {"ExpConcrete", "Concrete", "ConcreteStraightThrough"}
STRAIGHT_THROUGH = {"ConcreteStraightThrough", "BinaryConcreteStraightThrough"}
TRANSFORMED = {"Concrete", "BinaryConcrete"} | STRAIGHT_THROUGH
CONTINUOUS = ["ExpConcrete", "Concrete", "LogitBinaryConcrete", "BinaryConcrete"]
ALL = [*CONTINUOUS, "HardConcrete", *sorted(STRAIGHT_THROUGH)]


def _logits(name, logits=LOGITS):
    return logits if name in CATEGORICAL else logits[..., 0]


def _kwargs(name):
    return dict(HARD_KW) if name == "HardConcrete" else {}


def make(name, temperature=TEMPERATURE, logits=LOGITS, **kwargs):
    """``name`` with batch shape (2,): one row per temperature."""
    cls = getattr(nc, name)
    return cls(temperature, logits=_logits(name, logits), **_kwargs(name), **kwargs)


def _score(d, value, intermediates):
    """``log_prob`` as NumPyro's inference utilities call it (infer/util.py log_density)."""
    return d.log_prob(value, intermediates) if intermediates else d.log_prob(value)


# Compiled once per class and shape: eager JAX compiles every primitive separately.
score = jax.jit(_score)


@partial(jax.jit, static_argnums=2)
def draw(d, key, shape):
    """``d.sample_with_intermediates(key, shape)``."""
    return d.sample_with_intermediates(key, shape)


# -- pytrees, jit, vmap ------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_pytree_round_trip_keeps_class_shapes_parameters_and_log_prob(name):
    d = make(name)
    leaves, treedef = jax.tree_util.tree_flatten(d)
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(back) is type(d)
    assert (back.batch_shape, back.event_shape) == (d.batch_shape, d.event_shape)
    np.testing.assert_array_equal(back.logits, d.logits)
    np.testing.assert_array_equal(back.temperature, d.temperature)
    if name == "HardConcrete":
        assert (back.low, back.high) == (HARD_KW["low"], HARD_KW["high"])
    x, intermediates = draw(d, jax.random.key(0), (4,))
    np.testing.assert_array_equal(score(back, x, intermediates), score(d, x, intermediates))


@pytest.mark.parametrize("name", ALL)
def test_distribution_is_an_argument_and_a_result_of_jit(name):
    d = make(name, validate_args=True)
    out = jax.jit(lambda d: d)(d)
    assert type(out) is type(d) and out.batch_shape == d.batch_shape
    key = jax.random.key(1)
    x, intermediates = jax.jit(lambda d, k: d.sample_with_intermediates(k, (3,)))(d, key)
    x_eager, _ = d.sample_with_intermediates(key, (3,))
    np.testing.assert_allclose(x, x_eager, rtol=1e-5, atol=1e-6)
    lp = jax.jit(_score)(d, x, intermediates)
    np.testing.assert_allclose(lp, _score(d, x, intermediates), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_vmap_over_a_batch_of_parameters_matches_each_row(name):
    """Built inside ``vmap`` (``out_axes``) and mapped over (``in_axes``) with the axes
    ``vmap_over`` gives: NumPyro's idiom, the vmapped axis outside ``batch_shape``."""
    cls, kwargs = getattr(nc, name), _kwargs(name)
    temperatures, logits = jnp.asarray(TEMPERATURE), jnp.asarray(_logits(name))
    rows = [cls(temperatures[i], logits=logits[i], **kwargs) for i in range(2)]
    axes = vmap_over(rows[0], logits=0)
    build = jax.vmap(lambda t, a: cls(t, logits=a, **kwargs), out_axes=axes)
    batched = build(temperatures, logits)
    assert batched.batch_shape == rows[0].batch_shape
    keys = jax.random.split(jax.random.key(2), 2)
    vmapped_draw = jax.vmap(lambda d, k: d.sample_with_intermediates(k, (3,)), in_axes=(axes, 0))
    x, intermediates = vmapped_draw(batched, keys)
    log_p = jax.vmap(score, in_axes=(axes, 0, 0))(batched, x, intermediates)
    for i, row in enumerate(rows):
        x_i, intermediates_i = draw(row, keys[i], (3,))
        np.testing.assert_allclose(x[i], x_i, rtol=1e-5, atol=1e-6)
        expected = score(row, x_i, intermediates_i)
        np.testing.assert_allclose(log_p[i], expected, rtol=1e-5, atol=1e-6)


# -- gradients ---------------------------------------------------------------------------


def _pathwise_objective(name, weights, key):
    """``(logits, temperature) -> sum(weights * sample)`` with the noise fixed by ``key``."""

    def f(a, t):
        x = getattr(nc, name)(t, logits=a, **_kwargs(name)).rsample(key, (5,))
        return (weights * x).sum()

    return jax.jit(f)


@pytest.mark.parametrize("name", ALL)
def test_grad_of_expected_sample_function_wrt_logits_and_temperature_is_finite(name):
    d = make(name)
    weights = jax.random.normal(jax.random.key(4), (5, *d.batch_shape, *d.event_shape))
    f = _pathwise_objective(name, weights, jax.random.key(5))
    g_a, g_t = jax.grad(f, argnums=(0, 1))(d.logits, d.temperature)
    assert jnp.isfinite(g_a).all() and jnp.isfinite(g_t).all()
    assert (g_a != 0).any() and (g_t != 0).any()


def _assert_matches_central_differences(f, args, grads, atol):
    """``grads``, the gradient of ``f(*args)``, against central differences (step 1e-6)
    in every finite coordinate of every argument."""
    h = 1e-6
    for i, (x, g) in enumerate(zip(args, grads, strict=True)):
        for idx in zip(*np.nonzero(np.isfinite(x)), strict=True):
            e = jnp.zeros_like(x).at[idx].set(h)
            up, down = list(args), list(args)
            up[i], down[i] = x + e, x - e
            fd = (f(*up) - f(*down)) / (2 * h)
            np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_pathwise_gradient_matches_finite_differences_under_x64(name):
    with jax.enable_x64(True):
        d = make(name)
        weights = jax.random.normal(jax.random.key(6), (5, *d.batch_shape, *d.event_shape))
        f = _pathwise_objective(name, weights, jax.random.key(7))
        args = (d.logits, d.temperature)
        _assert_matches_central_differences(f, args, jax.grad(f, argnums=(0, 1))(*args), 1e-8)


@pytest.mark.parametrize("masked", [False, True], ids=["all-possible", "impossible-categories"])
@pytest.mark.parametrize("name", ["ExpConcrete", "Concrete"])
def test_log_prob_derivatives_match_finite_differences_under_x64(name, masked):
    """``log_prob`` of a fixed own sample (Concrete: with its intermediates): its value and
    its derivatives come from different code (the value from a ``cond``, the derivatives
    from one masked formula), so reverse- and forward-mode derivatives in the logits and
    the temperature must match central differences of the value, be exactly 0 on the
    impossible categories (the second row's last category is one: the chart drops the
    last possible coordinate), and the Hessian must be finite and symmetric."""
    with jax.enable_x64(True):
        logits = jnp.array([[0.4, -1.0, -0.3, 1.1], [0.2, 0.7, -0.5, 0.1]])
        if masked:
            logits = logits.at[0, 1].set(-jnp.inf).at[1, 3].set(-jnp.inf)
        t = jnp.array([0.6, 1.3])
        d = getattr(nc, name)(t, logits=logits)
        x, intermediates = d.sample_with_intermediates(jax.random.key(8), (3,))

        @jax.jit  # one compilation for the ~20 evaluations of the differences
        def f(a, temperature):
            return _score(getattr(nc, name)(temperature, logits=a), x, intermediates).sum()

        g_a, g_t = jax.grad(f, argnums=(0, 1))(logits, t)
        fwd_a, fwd_t = jax.jacfwd(f, argnums=(0, 1))(logits, t)
        np.testing.assert_allclose(fwd_a, g_a, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fwd_t, g_t, rtol=1e-10, atol=1e-12)
        assert np.isfinite(f(logits, t)) and np.isfinite(g_t).all()
        assert (g_a[jnp.isinf(logits)] == 0).all()
        _assert_matches_central_differences(f, (logits, t), (g_a, g_t), 1e-7)
        hessian = jax.hessian(f)(logits, t).reshape(logits.size, logits.size)
        assert np.isfinite(hessian).all()
        np.testing.assert_allclose(hessian, hessian.T, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("temperature", [0.5, 0.01])
@pytest.mark.parametrize("name", ALL)
def test_grad_of_log_prob_wrt_logits_and_temperature_is_finite(name, temperature):
    """Also at T = 0.01, where float32 samples of Concrete/BinaryConcrete round to the
    boundary: with intermediates the exact point is scored, without them the limit is,
    and neither path leaks NaN into the gradient."""
    n = 20
    logits = jax.random.normal(jax.random.key(8), (n,)) * 3
    cls, kwargs = getattr(nc, name), _kwargs(name)
    logits = logits if name in CATEGORICAL else logits[:4]
    x, intermediates = draw(cls(temperature, logits=logits, **kwargs), jax.random.key(9), (10,))

    def f(a, t, intermediates):
        return score(cls(t, logits=a, **kwargs), x, intermediates).sum()

    g_a, g_t = jax.grad(f, argnums=(0, 1))(logits, jnp.float32(temperature), intermediates)
    assert jnp.isfinite(g_a).all() and jnp.isfinite(g_t)
    if name in TRANSFORMED - STRAIGHT_THROUGH:
        g_a, g_t = jax.grad(f, argnums=(0, 1))(logits, jnp.float32(temperature), None)
        assert not jnp.isnan(g_a).any() and not jnp.isnan(g_t)


# -- shapes, expand, dtypes --------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_infer_shapes_matches_the_shapes_of_an_instance(name):
    temperature, logits = np.full((2, 1), 0.5), np.zeros((3, 4))
    d = make(name, temperature=temperature, logits=logits)
    cls = type(d)
    logits_shape = _logits(name, logits).shape
    assert cls.infer_shapes((2, 1), logits=logits_shape) == (d.batch_shape, d.event_shape)
    assert cls.infer_shapes((2, 1), None, logits_shape) == (d.batch_shape, d.event_shape)
    assert cls.infer_shapes((2, 1), probs=logits_shape) == (d.batch_shape, d.event_shape)


@pytest.mark.parametrize("name", ALL)
def test_expand_keeps_the_class_its_extras_and_its_intermediates(name):
    d = make(name).expand((4, 2))
    assert type(d) is getattr(nc, name)
    assert d.batch_shape == (4, 2) and d.logits.shape == (4, 2, *d.event_shape)
    x, intermediates = draw(d, jax.random.key(10), (3,))
    assert x.shape == (3, 4, 2, *d.event_shape)
    assert score(d, x, intermediates).shape == (3, 4, 2)
    if name == "HardConcrete":
        assert (d.low, d.high) == (HARD_KW["low"], HARD_KW["high"])
        assert d.prob_nonzero.shape == d.test_time_gate().shape == (4, 2)
    if name in STRAIGHT_THROUGH:
        assert d.mode.shape == d.mean.shape == (4, 2, *d.event_shape)
    with numpyro.plate("rows", 4, dim=-2), numpyro.handlers.seed(rng_seed=0):
        assert numpyro.sample("z", make(name)).shape == (4, 2, *d.event_shape)


@pytest.mark.parametrize("name", ALL)
def test_float32_by_default_and_float64_under_x64(name):
    for x64, dtype in ((False, jnp.float32), (True, jnp.float64)):
        with jax.enable_x64(x64):
            d = make(name)
            x, intermediates = draw(d, jax.random.key(11), (2,))
            leaves = jax.tree_util.tree_leaves((d, x, intermediates, score(d, x, intermediates)))
            assert {leaf.dtype for leaf in leaves} == {jnp.dtype(dtype)}


# -- noise, intermediates, straight-through ----------------------------------------------


def test_noise_never_takes_the_log_of_an_exact_zero_or_one(monkeypatch):
    """The extreme uniforms of the generator's grid give finite, symmetric logistic noise,
    and an exponential draw of exactly 0 gives a finite Gumbel."""
    eps = np.finfo(np.float32).eps
    like = jnp.zeros((), jnp.float32)
    monkeypatch.setattr(jax.random, "uniform", lambda *a: jnp.array([0.0, 1 - eps], jnp.float32))
    low, high = noise.logistic(jax.random.key(0), (2,), like)
    assert np.isfinite([low, high]).all() and low == -high
    np.testing.assert_allclose(high, np.log(2 / eps), rtol=1e-6)
    monkeypatch.setattr(jax.random, "exponential", lambda *a: jnp.zeros(2, jnp.float32))
    assert np.isfinite(noise.gumbel(jax.random.key(0), (2,), like)).all()


def test_log_density_scores_an_underflowed_sample_at_its_exact_log_space_value():
    """``log_density`` hands ``site["intermediates"]`` to ``log_prob``: a float32 Concrete
    sample at T = 0.02 has coordinates that are exactly 0, yet its density is finite."""
    d = nc.Concrete(0.02, logits=jnp.zeros(20))

    def model():
        numpyro.sample("z", d)

    lp, trace = log_density(numpyro.handlers.seed(model, rng_seed=0), (), {}, {})
    x, intermediates = trace["z"]["value"], trace["z"]["intermediates"]
    assert (x == 0).any() and jnp.isinf(d.log_prob(x))
    expected = d.log_prob(x, intermediates)
    assert jnp.isfinite(expected)
    np.testing.assert_allclose(lp, expected, rtol=1e-6)
    y = intermediates[0][0]  # Concrete density = ExpConcrete density / prod_{k<n} x_k
    log_p_y = nc.ExpConcrete(0.02, logits=jnp.zeros(20)).log_prob(y)
    np.testing.assert_allclose(expected, log_p_y - y[:-1].sum(), rtol=1e-6)
    substituted, _ = log_density(numpyro.handlers.substitute(model, {"z": x}), (), {}, {})
    assert jnp.isinf(substituted)  # a value alone: the density's limit on the boundary


@pytest.mark.parametrize("name", sorted(STRAIGHT_THROUGH))
def test_straight_through_value_is_exactly_hard_and_its_gradient_is_the_relaxed_one(name):
    d = make(name)
    key = jax.random.key(12)
    hard, (relaxed, _) = draw(d, key, (50,))
    if name == "ConcreteStraightThrough":
        np.testing.assert_array_equal(hard, jax.nn.one_hot(relaxed.argmax(-1), N))
    else:
        np.testing.assert_array_equal(hard, (relaxed > 0.5).astype(hard.dtype))
    np.testing.assert_array_equal(d.sample(key, (50,)), hard)
    np.testing.assert_array_equal(d.rsample(key, (50,)), hard)
    relaxed_name = name.removesuffix("StraightThrough")
    weights = jax.random.normal(jax.random.key(13), hard.shape)
    g_hard = jax.grad(_pathwise_objective(name, weights[:5], key), argnums=(0, 1))
    g_soft = jax.grad(_pathwise_objective(relaxed_name, weights[:5], key), argnums=(0, 1))
    got, expected = g_hard(d.logits, d.temperature), g_soft(d.logits, d.temperature)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(STRAIGHT_THROUGH))
def test_straight_through_log_prob_is_the_relaxed_density_and_needs_the_intermediates(name):
    d = make(name, validate_args=True)
    hard, intermediates = draw(d, jax.random.key(14), (6,))
    relaxed, relaxed_intermediates = intermediates
    relaxed_dist = make(name.removesuffix("StraightThrough"))
    np.testing.assert_array_equal(
        d.log_prob(hard, intermediates), relaxed_dist.log_prob(relaxed, relaxed_intermediates)
    )
    with pytest.raises(ValueError, match="intermediates"):
        d.log_prob(hard)
    np.testing.assert_array_equal(d.mean, d.probs)

    def guide():
        numpyro.sample("z", d)

    lp, trace = log_density(numpyro.handlers.seed(guide, rng_seed=1), (), {}, {})
    site = trace["z"]
    np.testing.assert_allclose(lp, d.log_prob(site["value"], site["intermediates"]).sum())


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("Concrete", {"logits": [np.nan, 0.0]}, "logits"),
        ("ExpConcrete", {"temperature": -1.0}, "temperature"),
        ("LogitBinaryConcrete", {"temperature": np.inf}, "temperature"),
        ("BinaryConcrete", {"probs": 1.5, "logits": None}, "probs"),
        ("ConcreteStraightThrough", {"probs": [0.7, 0.7], "logits": None}, "probs"),
        ("HardConcrete", {"low": 0.1}, "low"),
        ("HardConcrete", {"high": 0.9}, "high"),
        ("BinaryConcreteStraightThrough", {"probs": 0.5}, "probs"),
        ("ExpConcrete", {"logits": None}, "logits"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(name, kwargs, argument):
    cls = getattr(nc, name)
    args = {"temperature": 0.5, "logits": [0.2, 0.1] if name in CATEGORICAL else 0.2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        cls(args.pop("temperature"), validate_args=True, **args)


def test_numpyro_validation_switch_validates_parameters_and_values():
    with numpyro.validation_enabled(True):
        with pytest.raises(ValueError, match="logits"):
            nc.LogitBinaryConcrete(0.5, logits=np.nan)
        d = nc.Concrete(0.5, logits=jnp.zeros(3))
        with pytest.warns(UserWarning, match="Out-of-support"):
            assert d.log_prob(jnp.array([0.5, 0.6, 0.1])) == -jnp.inf
        with pytest.warns(UserWarning, match="Out-of-support"):
            assert nc.ExpConcrete(0.5, logits=jnp.zeros(3)).log_prob(jnp.zeros(3)) == -jnp.inf
    with numpyro.validation_enabled(False):
        nc.LogitBinaryConcrete(0.5, logits=np.nan)


@pytest.mark.filterwarnings("ignore:.*without its intermediates inside jit:RuntimeWarning")
@pytest.mark.parametrize(
    ("name", "inside", "outside", "reference"),
    [
        ("Concrete", [0.2, 0.3, 0.5], [0.5, 0.6, np.nan], R.concrete_log_density),
        ("BinaryConcrete", 0.3, np.nan, R.binary_concrete_log_density),
    ],
)
def test_a_value_outside_the_support_scores_minus_inf_beside_exact_scores(
    name, inside, outside, reference
):
    """NumPyro's convention in a batch holding a value in the support and a NaN outside it:
    the first scored as the density says, the second ``-inf``, eagerly (with the warning),
    under ``jit`` (traced: no check, same numbers) and under ``vmap``; the gradient w.r.t.
    the logits is the first value's, finite (the NaN is not differentiated)."""
    with jax.enable_x64(True):
        logits = jnp.asarray(_logits(name, LOGITS[0]))
        values = jnp.asarray([inside, outside])

        def log_prob(logits, values):
            return getattr(nc, name)(0.7, logits=logits, validate_args=True).log_prob(values)

        expected = [reference(np.asarray(inside), np.asarray(logits), 0.7), -np.inf]
        with pytest.warns(UserWarning, match="Out-of-support"):
            np.testing.assert_allclose(log_prob(logits, values), expected, rtol=1e-12)
        np.testing.assert_allclose(jax.jit(log_prob)(logits, values), expected, rtol=1e-12)
        by_row = jax.vmap(log_prob, in_axes=(None, 0))(logits, values)
        np.testing.assert_allclose(by_row, expected, rtol=1e-12)

        with pytest.warns(UserWarning, match="Out-of-support"):  # values: a constant in jit
            grad = jax.jit(jax.grad(lambda logits: log_prob(logits, values)[0]))(logits)
        assert np.isfinite(grad).all()
        h = 1e-6
        for idx in np.ndindex(np.shape(logits)):
            e = np.zeros(np.shape(logits))
            e[idx] = h
            fd = (reference(inside, logits + e, 0.7) - reference(inside, logits - e, 0.7)) / (2 * h)
            np.testing.assert_allclose(grad[idx], fd, rtol=1e-6, atol=1e-9)


# -- inference ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "temperature", "logits"),
    [
        ("ExpConcrete", 0.7, [0.3, -0.5, 1.0]),
        ("Concrete", 0.7, [0.3, -0.5, 1.0]),
        ("BinaryConcrete", 1.5, 0.4),
    ],
)
def test_nuts_on_a_prior_alone_returns_that_prior(name, temperature, logits):
    """NUTS works in the chart of ``biject_to(support)``: it recovers the prior only if
    ``log_prob`` is normalised there (for ExpConcrete: the paper's Eq. 26 minus y_n)."""
    d = getattr(nc, name)(temperature, logits=jnp.array(logits))

    def model():
        numpyro.sample("z", d)

    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=4000, thinning=2, progress_bar=False)
    mcmc.run(jax.random.key(15))
    chain = np.asarray(mcmc.get_samples()["z"]).reshape(2000, -1)
    direct = np.asarray(d.sample(jax.random.key(16), (2000,))).reshape(2000, -1)
    for k in range(chain.shape[1]):
        assert stats.ks_2samp(chain[:, k], direct[:, k]).pvalue > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTINUOUS)
def test_autonormal_svi_trains_with_each_continuous_class_as_a_latent_site(name):
    d = make(name)

    def model():
        z = numpyro.sample("z", d)
        numpyro.sample("obs", dist.Normal(z.sum(), 1.0), obs=0.3)

    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    result = svi.run(jax.random.key(17), 100, progress_bar=False)
    assert np.isfinite(result.losses).all()
    z = guide.sample_posterior(jax.random.key(18), result.params, sample_shape=(7,))["z"]
    assert z.shape == (7, *d.batch_shape, *d.event_shape)
    assert d.support(z).all()


def _train(model, guide, steps=2000):
    optimizer = numpyro.optim.Adam(jopt.exponential_decay(0.05, 1, 0.998))
    svi = SVI(model, guide, optimizer, Trace_ELBO(num_particles=16))
    result = svi.run(jax.random.key(19), steps, progress_bar=False)
    assert np.isfinite(result.losses).all()
    return result.params["log_alpha"]


@pytest.mark.slow
def test_hand_written_logit_binary_concrete_guide_recovers_the_relaxed_posterior():
    """A coin is biased (0.8) with prior probability 0.3, else fair-ish (0.2); 4 heads in
    6 flips.  Model and guide are relaxed in logit space (App. C.3, T = 1/2); the trained
    ``sigmoid(log alpha)`` is the maximiser of the relaxed ELBO, found independently by
    quadrature with scipy's logistic density, and lies between the prior and the exact
    discrete posterior (0.873)."""
    flips = np.array([1, 1, 0, 1, 0, 1.0])
    prior, temperature = 0.3, 0.5

    def model():
        x = jax.nn.sigmoid(numpyro.sample("z", nc.LogitBinaryConcrete(temperature, probs=prior)))
        with numpyro.plate("flips", len(flips)):
            numpyro.sample("obs", dist.Bernoulli(0.2 + 0.6 * x), obs=flips)

    def guide():
        log_alpha = numpyro.param("log_alpha", 0.0)
        numpyro.sample("z", nc.LogitBinaryConcrete(temperature, logits=log_alpha))

    trained = special.expit(float(_train(model, guide)))

    def negative_elbo(a):
        def integrand(y):
            log_q = stats.logistic.logpdf(y, a / temperature, 1 / temperature)
            log_p = stats.logistic.logpdf(y, special.logit(prior) / temperature, 1 / temperature)
            r = 0.2 + 0.6 * special.expit(y)
            log_lik = np.sum(flips * np.log(r) + (1 - flips) * np.log1p(-r))
            return np.exp(log_q) * (log_p + log_lik - log_q)

        return -integrate.quad(integrand, -60, 60, points=[a / temperature], limit=200)[0]

    best = special.expit(optimize.minimize_scalar(negative_elbo, bracket=(-2, 2)).x)
    assert abs(trained - best) < 0.01
    heads = prior * 0.8**4 * 0.2**2
    exact = heads / (heads + (1 - prior) * 0.2**4 * 0.8**2)
    assert prior < trained < exact


@pytest.mark.slow
def test_hand_written_exp_concrete_guide_recovers_the_relaxed_posterior():
    """Three categories with emission table ``TABLE``; model and guide are relaxed in log
    space (App. C.3, T = 1/2).  The trained ``softmax(log alpha)`` is the maximiser of the
    relaxed ELBO, found independently by Monte Carlo with common Gumbel draws and the
    paper's Eq. 26 written in numpy, and favours the exact posterior's mode."""
    prior, temperature = np.array([0.5, 0.3, 0.2]), 0.5
    table = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]])
    data = np.array([2, 3, 2, 1])

    def model():
        x = jnp.exp(numpyro.sample("z", nc.ExpConcrete(temperature, probs=prior)))
        with numpyro.plate("data", len(data)):
            numpyro.sample("obs", dist.Categorical(x @ table), obs=data)

    def guide():
        log_alpha = numpyro.param("log_alpha", jnp.zeros(3))
        numpyro.sample("z", nc.ExpConcrete(temperature, logits=log_alpha))

    trained = special.softmax(np.asarray(_train(model, guide)))

    gumbels = np.random.default_rng(0).gumbel(size=(20000, 3))

    def log_eq26(log_alpha, y):
        s = log_alpha - temperature * y
        return (
            special.gammaln(3) + 2 * np.log(temperature) + s.sum(-1) - 3 * special.logsumexp(s, -1)
        )

    def negative_elbo(b):
        log_alpha = np.append(b, 0.0)
        y = special.log_softmax((log_alpha + gumbels) / temperature, -1)
        log_lik = np.log(np.exp(y) @ table[:, data]).sum(-1)
        return -np.mean(log_eq26(np.log(prior), y) + log_lik - log_eq26(log_alpha, y))

    fit = optimize.minimize(
        negative_elbo, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-4}
    )
    best = special.softmax(np.append(fit.x, 0.0))
    np.testing.assert_allclose(trained, best, atol=0.02)
    exact = prior * table[:, data].prod(1)
    assert trained.argmax() == exact.argmax() and trained[2] > prior[2]


# -- validation under jit, masked categories --------------------------------------------


@pytest.mark.parametrize("name", [*sorted(CATEGORICAL), "BinaryConcrete", "HardConcrete"])
def test_constant_invalid_arguments_raise_under_jit_and_traced_ones_are_not_checked(name):
    """As NumPyro's own classes: constants are checked when the constructor runs inside
    ``jit``; a traced argument cannot be, and is not.  A constant value outside the
    support warns inside ``jit`` too."""
    logits = np.asarray(_logits(name))
    with pytest.raises(ValueError, match="temperature"):
        jax.jit(lambda: getattr(nc, name)(np.float32(-1.0), logits=logits, validate_args=True))()
    value = jax.jit(lambda t: getattr(nc, name)(t, logits=logits, validate_args=True).temperature)(
        -1.0
    )
    assert (np.asarray(value) == -1.0).all()
    support_value = np.full(logits.shape, 2.0)
    with pytest.warns(UserWarning, match="Out-of-support"):
        log_p = jax.jit(
            lambda: getattr(nc, name)(0.5, logits=logits, validate_args=True).log_prob(
                support_value
            )
        )()
    assert (np.asarray(log_p) == -np.inf).all()


def test_one_hot_categorical_minus_inf_logits_are_impossible_categories():
    logits = np.array([0.0, -np.inf, 0.0])
    d = nc.OneHotCategorical(logits=logits, validate_args=True)
    v = d.sample(jax.random.PRNGKey(0), (2000,))
    assert (v[:, 1] == 0).all()
    np.testing.assert_allclose(d.log_prob(jnp.eye(3)), [np.log(0.5), -np.inf, np.log(0.5)])
    np.testing.assert_allclose(d.entropy(), np.log(2), rtol=1e-6)

    def f(a):
        d = nc.OneHotCategorical(logits=a)
        return d.log_prob(jnp.eye(3)[0]) + d.entropy()

    g = jax.grad(f)(jnp.asarray(logits))
    assert np.isfinite(g).all() and g[1] == 0
    for bad in (np.array([0.0, np.inf, 0.0]), np.array([-np.inf, -np.inf])):
        with pytest.raises(ValueError, match="logits"):
            jax.jit(partial(nc.OneHotCategorical, logits=bad, validate_args=True))()


def test_a_model_prior_scoring_a_guide_sample_warns_to_use_the_log_space_class():
    """NumPyro's replay does not pass a guide's intermediates to the model, so a model's
    Concrete prior scores the rounded value; tracing that site warns, naming ExpConcrete."""

    def model():
        numpyro.sample("z", nc.Concrete(0.03, logits=jnp.zeros(20)))

    def guide():
        a = numpyro.param("a", jnp.zeros(20))
        numpyro.sample("z", nc.Concrete(0.03, logits=a))

    svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0))
    with pytest.warns(RuntimeWarning, match="Make ExpConcrete the sample site"):
        svi.update(state)


def test_masked_one_hot_categorical_trains_after_relax_with_auto_relaxed():
    def model():
        numpyro.sample("z", nc.OneHotCategorical(logits=jnp.array([0.0, -jnp.inf, 0.0])))

    relaxed = nc.relax(model)
    svi = SVI(relaxed, nc.AutoRelaxed(relaxed), numpyro.optim.Adam(0.01), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), 20, progress_bar=False)
    assert np.isfinite(result.losses).all()


def test_a_guide_set_up_under_jit_keeps_the_categories_the_prior_rules_out():
    """``jax.jit(svi.init)``: the prior's constant ``-inf`` logits are read while the guide
    is traced, so its probabilities are exactly zero there and the ELBO is finite."""

    def model():
        numpyro.sample("z", nc.OneHotCategorical(logits=jnp.array([0.0, -jnp.inf, 0.0]) * 1.0))

    relaxed = nc.relax(model)
    guide = nc.AutoRelaxed(relaxed)
    svi = SVI(relaxed, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    state = jax.jit(svi.init)(jax.random.PRNGKey(0))
    assert float(guide.probs(svi.get_params(state))["z"][1]) == 0.0
    _, loss = jax.jit(svi.update)(state)
    assert np.isfinite(float(loss))


def _transcendentals(fn, *args):
    """How many exp/log/log1p/logistic operations the jaxpr of ``fn(*args)`` performs."""
    names = {"exp", "log", "log1p", "logistic", "expm1"}

    def walk(jaxpr):
        count = 0
        for eqn in jaxpr.eqns:
            count += eqn.primitive.name in names
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", None)
                if inner is not None:
                    count += walk(getattr(inner, "jaxpr", inner))
        return count

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


@pytest.mark.parametrize("grad", [False, True])
def test_plain_path_costs_fewer_transcendentals_than_relaxed_bernoulli(grad):
    """``log_prob(sample(key))`` without intermediates (a model's prior scoring a guide's
    sample): the elementwise transcendental work, which dominates its time on CPU
    (``benchmarks/throughput.py``, ``plain`` rows), is below ``RelaxedBernoulliLogits``'."""

    def plain(make):
        def f(logits, key):
            d = make(0.5, logits)
            return d.log_prob(d.sample(key)).sum()

        return jax.grad(f) if grad else f

    args = (jnp.zeros((8, 5)), jax.random.PRNGKey(0))
    ours = _transcendentals(plain(lambda t, a: nc.BinaryConcrete(t, logits=a)), *args)
    builtin = _transcendentals(plain(lambda t, a: dist.RelaxedBernoulliLogits(t, logits=a)), *args)
    assert ours < builtin
