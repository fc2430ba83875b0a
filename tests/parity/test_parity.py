"""pyro_concrete and numpyro_concrete are the same distributions.

For the same float64 inputs every class's ``log_prob`` agrees to 1e-10 relative,
interior, boundary and atoms included, along both paths: a value alone, and a sample
scored at its exact log-space value (Pyro: the transform's cache; NumPyro: the
intermediates).  Samplers agree in law (two-sample KS tests on a marginal).

Float64 is switched on for this module only: torch's default dtype and JAX's x64 are
set by a fixture and restored after each test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import special, stats

import numpyro_concrete as nc
import pyro_concrete as pc

RTOL = 1e-10
HARD_KW = {"low": -0.2, "high": 1.3}
CATEGORICAL = ("ExpConcrete", "Concrete", "ConcreteStraightThrough")
STRAIGHT_THROUGH = ("ConcreteStraightThrough", "BinaryConcreteStraightThrough")
ALL = (
    "ExpConcrete",
    "Concrete",
    "LogitBinaryConcrete",
    "BinaryConcrete",
    "HardConcrete",
    *STRAIGHT_THROUGH,
)


@pytest.fixture(autouse=True)
def float64():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        torch.set_default_dtype(dtype)


def both(name, temperature, logits=None, probs=None, **kwargs):
    """The class ``name`` from each package, built from the same float64 numpy inputs."""
    if name == "HardConcrete":
        kwargs = {**HARD_KW, **kwargs}

    def args(convert):
        return {
            "probs": None if probs is None else convert(probs),
            "logits": None if logits is None else convert(logits),
            "validate_args": True,
            **kwargs,
        }

    pyro_dist = getattr(pc, name)(torch.tensor(temperature), **args(torch.tensor))
    numpyro_dist = getattr(nc, name)(jnp.asarray(temperature), **args(jnp.asarray))
    return pyro_dist, numpyro_dist


def assert_same(pyro_log_p, numpyro_log_p):
    pyro_log_p, numpyro_log_p = pyro_log_p.detach().numpy(), np.asarray(numpyro_log_p)
    assert pyro_log_p.dtype == numpyro_log_p.dtype == np.float64
    assert not np.isnan(numpyro_log_p).any()
    np.testing.assert_allclose(numpyro_log_p, pyro_log_p, rtol=RTOL, atol=0)


def _parameters(name, rng):
    """Batched temperature (2, 1) against logits ~ N(0, 3^2) of batch shape (3,)."""
    temperature = np.array([[1.0], [0.1]])
    logits = 3 * rng.normal(size=(3, 5) if name in CATEGORICAL else (3,))
    return temperature, logits


# -- log_prob ----------------------------------------------------------------------------


@pytest.mark.parametrize("from_probs", [False, True])
@pytest.mark.parametrize("name", ALL)
def test_log_prob_agrees_at_samples(name, from_probs):
    """At samples of ``numpyro_concrete`` (for straight-through classes: at the relaxed
    sample, handed to Pyro as the ``HardSample`` it scores), parameterised by logits or
    by probs (clamped to [eps, 1 - eps] the same way)."""
    rng = np.random.default_rng(0)
    temperature, logits = _parameters(name, rng)
    if from_probs:
        probs = special.softmax(logits, -1) if name in CATEGORICAL else special.expit(logits)
        pyro_dist, numpyro_dist = both(name, temperature, probs=probs)
    else:
        pyro_dist, numpyro_dist = both(name, temperature, logits=logits)
    x, intermediates = numpyro_dist.sample_with_intermediates(jax.random.key(1), (4,))
    if name in STRAIGHT_THROUGH:
        relaxed = torch.tensor(np.asarray(intermediates[0]))
        value = pc.HardSample.wrap(torch.tensor(np.asarray(x)), relaxed)
        # Pyro inverts the relaxed value (no cache for a tensor made here): so does this.
        numpyro_log_p = numpyro_dist.log_prob(x, [intermediates[0], None])
    else:
        value = torch.tensor(np.asarray(x))
        numpyro_log_p = numpyro_dist.log_prob(x)
    assert_same(pyro_dist.log_prob(value), numpyro_log_p)


def test_concrete_log_prob_agrees_on_the_boundary():
    """Coordinates exactly 0: the limits +inf, -inf and finite (``e = (n - m) lambda - m``
    is < 0, > 0 and = 0 at lambda = 0.25, 1, 0.5 with n = 3, m = 1), and m = 2."""
    x = np.array([[0.0, 0.3, 0.7], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
    logits = np.array([0.3, -0.5, 1.0])
    for temperature in (0.25, 0.5, 1.0):
        pyro_dist, numpyro_dist = both("Concrete", np.full((3,), temperature), logits=logits)
        assert_same(pyro_dist.log_prob(torch.tensor(x)), numpyro_dist.log_prob(jnp.asarray(x)))


def test_binary_concrete_log_prob_agrees_on_the_boundary():
    x = np.array([0.0, 1.0, 0.3, 1e-300, 1 - 1e-16])
    for temperature in (0.5, 1.0, 2.0):
        pyro_dist, numpyro_dist = both("BinaryConcrete", np.full((5,), temperature), logits=0.7)
        assert_same(pyro_dist.log_prob(torch.tensor(x)), numpyro_dist.log_prob(jnp.asarray(x)))


def test_hard_concrete_log_prob_agrees_at_its_atoms_and_inside():
    z = np.array([0.0, 1.0, 0.5, 1e-12, 1 - 1e-12, 0.97])
    for kwargs in ({}, {"low": -0.1, "high": 1.1}):
        pyro_dist, numpyro_dist = both("HardConcrete", 2 / 3, logits=np.full(6, -0.4), **kwargs)
        assert_same(pyro_dist.log_prob(torch.tensor(z)), numpyro_dist.log_prob(jnp.asarray(z)))
        for quantity in ("log_prob_zero", "log_prob_one", "prob_nonzero"):
            assert_same(getattr(pyro_dist, quantity), getattr(numpyro_dist, quantity))
        assert_same(pyro_dist.test_time_gate(), numpyro_dist.test_time_gate())


@pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
def test_log_prob_agrees_at_the_exact_log_space_value_of_an_underflowed_sample(name):
    """At T = 0.01 float64 samples round to the boundary; Pyro's ``RelaxedSample`` and
    NumPyro's intermediates both score the exact log-space value ``y``."""
    rng = np.random.default_rng(2)
    logits = 3 * rng.normal(size=(400,) if name == "Concrete" else (200,))
    pyro_dist, numpyro_dist = both(name, 0.01, logits=logits)
    x, intermediates = numpyro_dist.sample_with_intermediates(jax.random.key(3), (3,))
    y = torch.tensor(np.asarray(intermediates[0][0]))
    cached = pc.RelaxedSample.wrap(pyro_dist.transforms[0](y), y, pyro_dist.transform_class)
    assert ((x == 0) | (x == 1)).any() and ((cached == 0) | (cached == 1)).any()
    assert_same(pyro_dist.log_prob(cached), numpyro_dist.log_prob(x, intermediates))


@pytest.mark.parametrize("name", ["ExpConcrete", "LogitBinaryConcrete"])
def test_log_space_log_prob_agrees_far_in_the_tails(name):
    temperature = np.array([0.01, 0.05, 1.0])[:, None]
    pyro_dist, numpyro_dist = both(
        name, temperature, logits=np.array([[4.0, -3.0, 0.0]] if name == "ExpConcrete" else 0.3)
    )
    if name == "ExpConcrete":
        y = np.array([[-1e-300, -800.0, -700.0], [0.0, -1e4, -1e4]])
        y = y - np.logaddexp.reduce(y, -1, keepdims=True)
    else:
        y = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    assert_same(pyro_dist.log_prob(torch.tensor(y)), numpyro_dist.log_prob(jnp.asarray(y)))


def test_logit_binary_concrete_closed_forms_agree():
    rng = np.random.default_rng(4)
    pyro_dist, numpyro_dist = both(
        "LogitBinaryConcrete", np.array([0.3, 1.7]), logits=rng.normal(size=2)
    )
    for quantity in ("mean", "mode", "variance"):
        assert_same(getattr(pyro_dist, quantity), getattr(numpyro_dist, quantity))
    assert_same(pyro_dist.entropy(), numpyro_dist.entropy())
    y, u = np.array([-2.0, 3.0]), np.array([0.1, 0.95])
    assert_same(pyro_dist.cdf(torch.tensor(y)), numpyro_dist.cdf(jnp.asarray(y)))
    assert_same(pyro_dist.icdf(torch.tensor(u)), numpyro_dist.icdf(jnp.asarray(u)))


# -- sample laws -------------------------------------------------------------------------


def _category_counts(hard):
    """Counts of the categories of one-hot rows, or of 0 and 1 for a single column."""
    index = hard.argmax(-1) if hard.shape[1] > 1 else hard[:, 0].astype(int)
    return np.bincount(index, minlength=max(hard.shape[1], 2))


@pytest.mark.parametrize("name", ALL)
def test_sample_laws_agree(name):
    """Two-sample KS test on the first coordinate (for straight-through classes: of the
    relaxed sample they carry) and equal frequencies of the hard values."""
    temperature, logits = 0.4, np.array([0.5, -1.0, 0.2]) if name in CATEGORICAL else 0.5
    pyro_dist, numpyro_dist = both(name, temperature, logits=logits)
    torch.manual_seed(5)
    pyro_x = pyro_dist.rsample((4000,))
    numpyro_x, intermediates = numpyro_dist.sample_with_intermediates(jax.random.key(6), (4000,))
    if name in STRAIGHT_THROUGH:
        hard = (pyro_x.numpy().reshape(4000, -1), np.asarray(numpyro_x).reshape(4000, -1))
        frequencies = [_category_counts(h) for h in hard]
        assert stats.chi2_contingency(np.array(frequencies)).pvalue > 1e-3
        pyro_x, numpyro_x = pyro_x.relaxed, intermediates[0]
    pyro_first = pyro_x.numpy().reshape(4000, -1)[:, 0]
    numpyro_first = np.asarray(numpyro_x).reshape(4000, -1)[:, 0]
    assert stats.ks_2samp(pyro_first, numpyro_first).pvalue > 1e-3
