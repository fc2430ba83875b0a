"""NumPyro's own generic distribution tests, run on the family.

Adapted from NumPyro's ``test/test_distributions.py`` (Apache-2.0; ``test_dist_shape``,
``test_infer_shapes``, ``test_has_rsample``, ``test_sample_gradient``,
``test_jit_log_likelihood``, ``test_log_prob_gradient``, ``test_distribution_constraints``,
``test_dist_pytree``, ``test_vmap_dist``, ``test_expand``): vendored, not fetched, so that
the suite runs offline and pins what it checks.  The adaptations, each for a documented
difference of the family:

- NumPyro's ``gen_values_within_bounds`` / ``gen_values_outside_bounds`` know only NumPyro's
  constraints; ``_VALID`` / ``_INVALID`` below give values for ours (``positive_finite``,
  ``masked_logits``);
- a straight-through class scores the relaxed sample carried in a hard value's
  intermediates, which a hard value alone does not determine: the tests that call
  ``log_prob(sample(key))`` pass the intermediates for those classes;
- ``expand`` keeps the class (the README says why) instead of returning an
  ``ExpandedDistribution``.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from jax import lax, random
from numpy.testing import assert_allclose
from numpyro.distributions import TransformedDistribution, constraints
from numpyro.distributions.batch_util import vmap_over
from numpyro.distributions.transforms import biject_to

import numpyro_concrete as nc
from numpyro_concrete.constraints import masked_logits, positive_finite

STRAIGHT_THROUGH = (nc.ConcreteStraightThrough, nc.BinaryConcreteStraightThrough)

# (class, params): params are positional (temperature, probs, logits), as NumPyro's own
# cases pass them
CASES = [
    (nc.ExpConcrete, (np.array([0.5, 1.5], np.float32), np.array([0.2, 0.3, 0.5], np.float32))),
    (nc.Concrete, (np.array([0.6, 1.2], np.float32), np.array([0.5, 0.2, 0.3], np.float32))),
    (nc.LogitBinaryConcrete, (np.float32(0.7), None, np.array([0.3, -1.0], np.float32))),
    (nc.BinaryConcrete, (np.array([0.8, 1.5], np.float32), np.array([0.3, 0.6], np.float32))),
    (nc.HardConcrete, (np.float32(2 / 3), None, np.array([0.3, -1.0], np.float32))),
    (nc.ConcreteStraightThrough, (np.float32(0.8), None, np.array([0.3, -0.5, 1.0]))),
    (nc.BinaryConcreteStraightThrough, (np.float32(0.9), None, np.array([0.3, -1.0]))),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(CASES)]
parametrize_cases = pytest.mark.parametrize("jax_dist, params", CASES, ids=IDS)
# The discrete class that the family relaxes has no rsample, which the other tests assume.
DISCRETE = [(nc.OneHotCategorical, (np.array([0.2, 0.3, 0.5], np.float32), None))]
# The tests that compile several programs per case run two cases in the fast tier (a
# transformed class and a straight-through one) and every case in the slow tier.
FAST = {nc.Concrete, nc.BinaryConcreteStraightThrough}
parametrize_cases_heavy = pytest.mark.parametrize(
    "jax_dist, params",
    [case if case[0] in FAST else pytest.param(*case, marks=pytest.mark.slow) for case in CASES],
    ids=IDS,
)


def _score(d, key, sample_shape=()):
    """``d.log_prob`` of a sample, with its intermediates where the class needs them."""
    if isinstance(d, STRAIGHT_THROUGH):
        x, intermediates = d.sample_with_intermediates(key, sample_shape)
        return x, lambda d: d.log_prob(x, intermediates)
    x = d.sample(key, sample_shape)
    return x, lambda d: d.log_prob(x)


def _valid(constraint, shape, key):
    if constraint is positive_finite:
        return jnp.exp(random.normal(key, shape))
    if constraint is constraints.simplex:
        return jax.nn.softmax(random.normal(key, shape), -1)
    if constraint is constraints.unit_interval:
        return random.uniform(key, shape, minval=0.05, maxval=0.95)
    return random.normal(key, shape)  # masked_logits, real


def _invalid(constraint, shape, key):
    if constraint is positive_finite:
        return -jnp.exp(random.normal(key, shape))
    if constraint is constraints.simplex:
        return jnp.exp(random.normal(key, shape)) + 1.0
    if constraint is constraints.unit_interval:
        return 1.0 + jnp.exp(random.normal(key, shape))
    assert constraint is masked_logits or constraint is constraints.real
    return jnp.full(shape, jnp.inf)


def _outside_support(d):
    shape = d.batch_shape + d.event_shape
    if isinstance(d, nc.LogitBinaryConcrete):
        return jnp.full(shape, jnp.nan)
    return jnp.full(shape, 2.0)  # above 1; off the (log-)simplex; not one-hot


@parametrize_cases
@pytest.mark.parametrize("prepend_shape", [(), (2, 3)])
def test_dist_shape(jax_dist, params, prepend_shape):
    jax_dist = jax_dist(*params)
    expected_shape = prepend_shape + jax_dist.batch_shape + jax_dist.event_shape
    samples = jax_dist.sample(key=random.key(0), sample_shape=prepend_shape)
    assert isinstance(samples, jnp.ndarray)
    assert jnp.shape(samples) == expected_shape


@parametrize_cases
def test_infer_shapes(jax_dist, params):
    shapes = [None if p is None else jnp.shape(p) for p in params]
    d = jax_dist(*params)
    assert type(d).infer_shapes(*shapes) == (d.batch_shape, d.event_shape)


@parametrize_cases
def test_has_rsample(jax_dist, params):
    jax_dist = jax_dist(*params)
    masked_dist = jax_dist.mask(False)
    indept_dist = jax_dist.expand_by([2]).to_event(1)
    transf_dist = TransformedDistribution(jax_dist, biject_to(constraints.real))
    assert jax_dist.has_rsample
    assert masked_dist.has_rsample == jax_dist.has_rsample
    assert indept_dist.has_rsample == jax_dist.has_rsample
    assert transf_dist.has_rsample == jax_dist.has_rsample
    if isinstance(jax_dist, TransformedDistribution):
        assert jax_dist.base_dist.has_rsample
    else:
        assert set(jax_dist.arg_constraints) == set(jax_dist.reparametrized_params)
    jax_dist.rsample(random.key(0))


@parametrize_cases_heavy
def test_sample_gradient(jax_dist, params):
    dist_args = inspect.getfullargspec(jax_dist.__init__)[0][1:]
    params_dict = dict(zip(dist_args[: len(params)], params, strict=True))
    reparametrized_params = [
        p for p in type(jax_dist(**params_dict)).reparametrized_params if p in params_dict
    ]
    repara_params = tuple(params_dict[k] for k in reparametrized_params)
    rng_key = random.key(0)

    def fn(args):
        args_dict = dict(zip(reparametrized_params, args, strict=True))
        return jnp.sum(jax_dist(**args_dict).sample(key=rng_key))

    actual_grad = jax.grad(fn)(repara_params)
    assert len(actual_grad) == len(repara_params)
    eps = 1e-3
    for i in range(len(repara_params)):
        if repara_params[i] is None:
            continue
        args_lhs = [p if j != i else p - eps for j, p in enumerate(repara_params)]
        args_rhs = [p if j != i else p + eps for j, p in enumerate(repara_params)]
        with numpyro.validation_enabled(False):
            expected_grad = (fn(args_rhs) - fn(args_lhs)) / (2.0 * eps)
        assert jnp.shape(actual_grad[i]) == jnp.shape(repara_params[i])
        if isinstance(jax_dist(*params), STRAIGHT_THROUGH):
            # the forward value is hard: finite differences of it are 0 almost surely,
            # while the gradient is the relaxed one by design
            assert np.isfinite(actual_grad[i]).all() and expected_grad == 0
            continue
        assert_allclose(jnp.sum(actual_grad[i]), expected_grad, rtol=0.02, atol=0.03)


@parametrize_cases_heavy
def test_jit_log_likelihood(jax_dist, params):
    _, log_prob_of = _score(jax_dist(*params), random.key(0), (2, 3))

    def log_likelihood(*params):
        return log_prob_of(jax_dist(*params))

    expected = log_likelihood(*params)
    actual = jax.jit(log_likelihood)(*params)
    assert_allclose(actual, expected, atol=2e-5, rtol=2e-5)


@parametrize_cases_heavy
def test_log_prob_gradient(jax_dist, params):
    _, log_prob_of = _score(jax_dist(*params), random.key(0))

    def fn(*args):
        return jnp.sum(log_prob_of(jax_dist(*args)))

    eps = 1e-3
    for i in range(len(params)):
        if params[i] is None:
            continue
        actual_grad = jax.grad(fn, i)(*params)
        args_lhs = [p if j != i else p - eps for j, p in enumerate(params)]
        args_rhs = [p if j != i else p + eps for j, p in enumerate(params)]
        with numpyro.validation_enabled(False):
            expected_grad = (fn(*args_rhs) - fn(*args_lhs)) / (2.0 * eps)
        assert jnp.shape(actual_grad) == jnp.shape(params[i])
        assert_allclose(jnp.sum(actual_grad), expected_grad, rtol=0.05, atol=0.01)


@pytest.mark.parametrize(
    "jax_dist, params", CASES + DISCRETE, ids=[*IDS, f"OneHotCategorical-{len(CASES)}"]
)
def test_distribution_constraints(jax_dist, params):
    dist_args = inspect.getfullargspec(jax_dist.__init__)[0][1:]
    valid_params, oob_params = list(params), list(params)
    key = random.key(1)
    for i, param in enumerate(params):
        if param is None:
            continue
        constraint = jax_dist.arg_constraints[dist_args[i]]
        key, key_gen = random.split(key)
        oob_params[i] = _invalid(constraint, jnp.shape(param), key_gen)
        valid_params[i] = _valid(constraint, jnp.shape(param), key_gen)

    with numpyro.validation_enabled(False):
        assert jax_dist(*oob_params)
    with pytest.raises(ValueError):
        jax_dist(*oob_params, validate_args=True)
    oob_params = jax.device_get(oob_params)
    with pytest.raises(ValueError):
        jax.jit(lambda: jax_dist(*oob_params, validate_args=True))()

    d = jax_dist(*valid_params, validate_args=True)
    oob_samples = _outside_support(d)
    with pytest.warns(UserWarning, match="Out-of-support"):
        d.log_prob(oob_samples)

    with pytest.warns(UserWarning, match="Out-of-support"):
        # test warning work under jit omnistaging
        oob_samples = jax.device_get(oob_samples)
        valid_params = jax.device_get(valid_params)

        def log_prob_fn():
            d = jax_dist(*valid_params, validate_args=True)
            return d.log_prob(oob_samples)

        jax.jit(log_prob_fn)()


@parametrize_cases_heavy
def test_dist_pytree(jax_dist, params):
    def f(x):
        return jax_dist(*params)

    jax.jit(f)(0)  # flatten/unflatten
    lax.map(f, np.ones(3))  # compatibility with scan
    expected_dist = f(0)
    actual_dist = jax.jit(f)(0)
    for name in expected_dist.arg_constraints:
        expected_arg, actual_arg = getattr(expected_dist, name), getattr(actual_dist, name)
        assert actual_arg is not None, f"arg {name} is None"
        assert_allclose(actual_arg, expected_arg, atol=1e-7)
    expected_sample, expected_log_prob = _score(expected_dist, random.key(0))
    actual_sample, actual_log_prob = _score(actual_dist, random.key(0))
    assert_allclose(actual_sample, expected_sample, rtol=1e-6)
    assert_allclose(actual_log_prob(actual_dist), expected_log_prob(expected_dist), rtol=1e-5)


@parametrize_cases_heavy
def test_vmap_dist(jax_dist, params):
    names = list(inspect.signature(jax_dist).parameters)
    given = [i for i, p in enumerate(params) if p is not None]
    d = jax_dist(*params)
    cases = [(tuple(0 if i in given else None for i in range(len(params))), 0)]
    cases += [([0 if i == idx else None for i in range(len(params))], 0) for idx in given]
    cases += [
        (
            [0 if i == idx else None for i in range(len(params))],
            vmap_over(d, **{names[idx]: 0}),
        )
        for idx in given
    ]
    for in_axes, out_axes in cases:
        batched = [
            jnp.expand_dims(p, 0) if isinstance(ax, int) else p
            for p, ax in zip(params, in_axes, strict=True)
        ]
        batched_d = jax.vmap(jax_dist, in_axes=in_axes, out_axes=out_axes)(*batched)
        samples = d.sample(random.key(0))
        batched_samples = jax.vmap(lambda d: d.sample(random.key(0)), in_axes=(out_axes,))(
            batched_d
        )
        assert batched_samples.shape == (1, *samples.shape)
        assert_allclose(batched_samples[0], samples, rtol=1e-6)


@parametrize_cases_heavy
@pytest.mark.parametrize("prepend_shape", [(), (2,)])
@pytest.mark.parametrize("sample_shape", [(4,)])
def test_expand(jax_dist, params, prepend_shape, sample_shape):
    jax_dist = jax_dist(*params)
    new_batch_shape = prepend_shape + jax_dist.batch_shape
    expanded_dist = jax_dist.expand(new_batch_shape)
    assert type(expanded_dist) is type(jax_dist)  # NumPyro: an ExpandedDistribution
    samples, log_prob_of = _score(expanded_dist, random.key(0), sample_shape)
    assert expanded_dist.batch_shape == new_batch_shape
    assert jnp.shape(samples) == sample_shape + new_batch_shape + jax_dist.event_shape
    assert log_prob_of(expanded_dist).shape == sample_shape + new_batch_shape
    assert expanded_dist.expand((3,) + new_batch_shape).batch_shape == (3,) + new_batch_shape
    if prepend_shape:
        with pytest.raises(ValueError, match="Cannot broadcast distribution of shape"):
            expanded_dist.expand((3,) + jax_dist.batch_shape)
