"""The contract every Concrete-family distribution honours, in every backend.

Not collected by itself: ``tests/<backend>/test_contract.py`` subclasses
:class:`ContractSuite` and provides a ``backend`` fixture (``tests/backends.py``).  The
suite speaks numpy; the expected values come from ``tests/references.py`` (float64,
written from the paper's formulas), scipy quadrature, closed forms (scipy.stats) and
finite differences of the references, never from the code under test run another way.

Statistical tests use fixed seeds and p-value thresholds of 1e-3 (``P_MIN``).
"""

import math
import re

import numpy as np
import pytest
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from scipy import integrate, stats
from scipy.special import log_softmax, logit, logsumexp

from . import references as R
from .backends import CLASS_NAMES

P_MIN = 1e-3  # p-value threshold of every statistical test

CATEGORICAL = ("ExpConcrete", "Concrete", "ConcreteStraightThrough")
STRAIGHT_THROUGH = {
    "ConcreteStraightThrough": "Concrete",
    "BinaryConcreteStraightThrough": "BinaryConcrete",
}
DENSITY = ("ExpConcrete", "Concrete", "LogitBinaryConcrete", "BinaryConcrete")  # Lebesgue densities
SCORED_AT_VALUES = (*DENSITY, "HardConcrete")  # log_prob of any value of the support
NO_CLOSED_FORM = ("ExpConcrete", "Concrete", "BinaryConcrete", "HardConcrete")
HARD_KW = {"low": -0.2, "high": 1.3}  # a non-default stretch, to see it survive

# ``heavy``: a test (or parametrisation) that is cheap in Pyro but costs a JIT compilation
# per new shape in JAX.  tests/conftest.py marks it ``extended`` in a test class that sets
# ``heavy_is_extended = True`` (the NumPyro binding): CI runs one cheap parametrisation of
# every property there (and every one in Pyro), ``make test-extended`` the others.
HEAVY = pytest.mark.heavy


def light_only(values, light):
    """``values`` as parameters, each not in ``light`` marked ``heavy``."""
    return [v if v in light else pytest.param(v, marks=HEAVY) for v in values]


# --- helpers -------------------------------------------------------------------------


def _logits(rng, name, batch_shape, n, scale=1.0):
    shape = tuple(batch_shape) + ((n,) if name in CATEGORICAL else ())
    return scale * rng.normal(size=shape)


def _event(name, n):
    return (n,) if name in CATEGORICAL else ()


def reference_log_prob(name, value, logits, temperature, **kwargs):
    """The float64 reference log density of ``name`` at ``value`` (for a straight-through
    class: the relaxed value it carries)."""
    name = STRAIGHT_THROUGH.get(name, name)
    if name == "ExpConcrete":
        return R.exp_concrete_log_density(value, logits, temperature)
    if name == "Concrete":
        return R.concrete_log_density(value, logits, temperature)
    if name == "LogitBinaryConcrete":
        return R.logit_binary_concrete_log_density(value, logits, temperature)
    if name == "BinaryConcrete":
        return R.binary_concrete_log_density(value, logits, temperature)
    if name == "HardConcrete":
        return R.hard_concrete_log_prob(value, logits, temperature, **kwargs)
    raise AssertionError(name)


def reference_log_prob_at_log_space(name, y, logits, temperature):
    """The float64 reference log density of a Concrete / Binary Concrete value (or of the
    relaxed value of a straight-through sample) given its exact log-space value ``y``."""
    name = STRAIGHT_THROUGH.get(name, name)
    if name == "Concrete":
        return R.concrete_log_density_at_log(y, logits, temperature)
    if name == "BinaryConcrete":
        return R.binary_concrete_log_density_at_logit(y, logits, temperature)
    raise AssertionError(name)


def interior_points(name, rng, shape, n=None):
    """Float64 points of the support of ``name`` (HardConcrete: some exactly 0 or 1)."""
    if name in ("ExpConcrete", "Concrete"):
        scale = rng.choice([0.3, 2.0, 8.0], size=(*shape, 1))
        y = log_softmax(scale * rng.normal(size=(*shape, n)), axis=-1)
        return y if name == "ExpConcrete" else np.exp(y)
    if name == "LogitBinaryConcrete":
        return 4.0 * rng.normal(size=shape)
    if name == "BinaryConcrete":
        return R.expit(4.0 * rng.normal(size=shape))
    if name == "HardConcrete":
        z = rng.uniform(size=shape)
        u = rng.uniform(size=shape)
        return np.where(u < 0.15, 0.0, np.where(u > 0.85, 1.0, z))
    raise AssertionError(name)


def scored_and_expected(backend, dist, name, logits, temperature, rng, shape, n, **kwargs):
    """``log_prob`` of points of the support and the reference there; straight-through
    classes score their own samples: the reference is taken at the exact log-space value
    of the relaxed sample they carry (which may have rounded to a vertex)."""
    if name in STRAIGHT_THROUGH:
        draw = backend.sample(dist, shape, seed=int(rng.integers(2**31)))
        got = backend.log_prob(dist, draw)
        y = backend.log_space_value(dist, draw)
        return got, reference_log_prob_at_log_space(name, y, logits, temperature)
    batch = backend.batch_shape(dist)
    value = interior_points(name, rng, tuple(shape) + batch, n)
    got = backend.log_prob(dist, value)
    return got, reference_log_prob(name, value, logits, temperature, **kwargs)


def _kwargs(name):
    return dict(HARD_KW) if name == "HardConcrete" else {}


def _assert_close(got, expected, rtol, atol=0.0):
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def _central_difference(f, x, h):
    """Gradient of the scalar ``f`` at the float64 array ``x`` by central differences."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        grad[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def _chi_square_p(counts, probs):
    counts = np.asarray(counts, dtype=np.float64)
    return stats.chisquare(counts, counts.sum() * np.asarray(probs)).pvalue


def _one_hot_argmax(v):
    return np.eye(v.shape[-1])[v.argmax(-1)]


# --- the suite -----------------------------------------------------------------------


class ContractSuite:
    """The contract, for every class of the family, against a ``backend``."""

    # -- shapes, broadcasting, expand --------------------------------------------------

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_batch_temperature_broadcasts_against_logits(self, backend, name):
        rng = np.random.default_rng(0)
        n = 4
        temperature = np.array([[0.5], [2.0]])  # (2, 1) against logits (3, n): batch (2, 3)
        logits = _logits(rng, name, (3,), n)
        dist = backend.make(name, temperature, logits, **_kwargs(name))
        assert backend.batch_shape(dist) == (2, 3)
        assert backend.event_shape(dist) == _event(name, n)
        draw = backend.sample(dist, (5,), seed=1)
        assert draw.value.shape == (5, 2, 3, *_event(name, n))
        got, expected = scored_and_expected(
            backend, dist, name, logits, temperature, rng, (5,), n, **_kwargs(name)
        )
        assert got.shape == (5, 2, 3)  # pytorch issue #37162 returns the wrong shape
        _assert_close(got, expected, rtol=1e-9, atol=1e-9)  # each row with its own lambda

    @HEAVY
    @pytest.mark.parametrize("name", SCORED_AT_VALUES)
    def test_log_prob_broadcasts_value_against_batch_shape(self, backend, name):
        rng = np.random.default_rng(1)
        n = 3
        temperature = np.array([[0.4], [1.5]])
        logits = _logits(rng, name, (3,), n)
        dist = backend.make(name, temperature, logits, **_kwargs(name))
        value = interior_points(name, rng, (4, 1, 1), n)
        got = backend.log_prob(dist, value)
        assert got.shape == (4, 2, 3)
        expected = reference_log_prob(name, value, logits, temperature, **_kwargs(name))
        _assert_close(got, expected, rtol=1e-10, atol=1e-10)

    @HEAVY
    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_probs_and_logits_parametrise_the_same_distribution(self, backend, name):
        rng = np.random.default_rng(2)
        n = 5
        z = _logits(rng, name, (3,), n)
        if name in CATEGORICAL:
            probs = R.softmax(z, axis=-1)
            logits = np.log(probs)
        else:
            probs = R.expit(z)
            logits = logit(probs)
        temperature = 0.8
        for kwargs in ({"probs": probs}, {"logits": logits}):
            dist = backend.make(name, temperature, **kwargs, **_kwargs(name))
            assert backend.batch_shape(dist) == (3,)
            got, expected = scored_and_expected(
                backend, dist, name, logits, temperature, rng, (6,), n, **_kwargs(name)
            )
            _assert_close(got, expected, rtol=1e-9, atol=1e-9)

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_expand_keeps_class_and_shapes(self, backend, name):
        rng = np.random.default_rng(3)
        n = 4
        temperature = np.array([0.3, 0.9, 2.0])
        logits = _logits(rng, name, (3,), n)
        dist = backend.make(name, temperature, logits, **_kwargs(name))
        expanded = backend.expand(dist, (2, 3))
        assert type(expanded) is type(dist)
        assert backend.batch_shape(expanded) == (2, 3)
        assert backend.event_shape(expanded) == _event(name, n)
        draw = backend.sample(expanded, (5,), seed=4)
        assert draw.value.shape == (5, 2, 3, *_event(name, n))
        got, expected = scored_and_expected(
            backend, expanded, name, logits, temperature, rng, (5,), n, **_kwargs(name)
        )
        assert got.shape == (5, 2, 3)
        _assert_close(got, expected, rtol=1e-9, atol=1e-9)

    # -- support ------------------------------------------------------------------------

    @pytest.mark.parametrize("dtype", light_only(["float32", "float64"], {"float32"}))
    @pytest.mark.parametrize("temperature", light_only([0.05, 1.0], {0.05}))
    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_samples_lie_in_the_support(self, backend, name, temperature, dtype):
        rng = np.random.default_rng(5)
        n = 6
        logits = _logits(rng, name, (3,), n, scale=2.0)
        dist = backend.make(name, temperature, logits, dtype=dtype)
        draw = backend.sample(dist, (200,), seed=6)
        assert backend.in_support(dist, draw).all()
        v = draw.value.astype(np.float64)
        tol = 64 * n * np.finfo(dtype).eps
        if name == "ExpConcrete":
            assert np.isfinite(v).all(), v[~np.isfinite(v)]
            assert (v <= tol).all(), v.max()
            assert np.abs(logsumexp(v, axis=-1)).max() <= tol
        elif name == "Concrete":
            assert (v >= 0).all() and np.abs(v.sum(-1) - 1).max() <= tol
        elif name == "LogitBinaryConcrete":
            assert np.isfinite(v).all()
        elif name in ("BinaryConcrete", "HardConcrete"):
            assert ((v >= 0) & (v <= 1)).all()
        elif name == "ConcreteStraightThrough":
            assert ((v == 0) | (v == 1)).all() and (v.sum(-1) == 1).all()
        else:
            assert ((v == 0) | (v == 1)).all()

    # -- normalisation ------------------------------------------------------------------

    @staticmethod
    def _mass_in_chart(log_integrand, dim, temperature):
        """``integral exp(log_integrand(u)) du`` over the box ``[-w, w]^dim``,
        ``w = 40 / lambda``: in the chart u the tails decay as ``exp(-lambda |u|)``, so the
        box leaves out a mass below 1e-14."""
        half_width = 40.0 / temperature
        res = integrate.cubature(
            lambda u: np.exp(log_integrand(u)),
            np.full(dim, -half_width),
            np.full(dim, half_width),
            rtol=1e-8,
            atol=1e-11,
        )
        assert res.status == "converged"
        return float(res.estimate)

    def test_reference_chart_jacobians_agree_with_numerical_determinants(self):
        u = np.random.default_rng(9).normal(scale=3.0, size=(50, 3))
        by_matrix_y, by_matrix_x = R.chart_log_jacobians_by_matrix(u)
        _assert_close(R.exp_concrete_chart_log_jacobian(u), by_matrix_y, rtol=1e-8, atol=1e-8)
        _assert_close(R.concrete_chart_log_jacobian(u), by_matrix_x, rtol=1e-8, atol=1e-8)

    @pytest.mark.parametrize("temperature", light_only([0.25, 0.6, 1.7], {0.6}))
    @pytest.mark.parametrize("n", light_only([2, 3], {3}))
    def test_exp_concrete_is_normalised_in_its_chart(self, backend, n, temperature):
        """The density of (y_1..y_{n-1}); integrated in u = y[:-1] - y[-1] (the chart that
        biject_to(log-simplex) parameterises), with the reference's Jacobian."""
        logits = np.random.default_rng(10 + n).normal(size=n)
        dist = backend.make("ExpConcrete", temperature, logits)

        def log_integrand(u):
            y = R.log_simplex_from_chart(u)
            return backend.log_prob(dist, y) + R.exp_concrete_chart_log_jacobian(u)

        assert self._mass_in_chart(log_integrand, n - 1, temperature) == pytest.approx(1, abs=1e-6)

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.25, 0.6, 1.7])
    @pytest.mark.parametrize("n", [2, 3])
    def test_concrete_is_normalised_on_the_simplex(self, backend, n, temperature):
        logits = np.random.default_rng(20 + n).normal(size=n)
        dist = backend.make("Concrete", temperature, logits)

        def log_integrand(u):
            x = np.exp(R.log_simplex_from_chart(u))
            return backend.log_prob(dist, x) + R.concrete_chart_log_jacobian(u)

        assert self._mass_in_chart(log_integrand, n - 1, temperature) == pytest.approx(1, abs=1e-6)

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.25, 0.6, 1.7])
    def test_logit_binary_concrete_is_normalised(self, backend, temperature):
        dist = backend.make("LogitBinaryConcrete", temperature, np.array(0.7))
        mass = self._mass_in_chart(lambda u: backend.log_prob(dist, u[:, 0]), 1, temperature)
        assert mass == pytest.approx(1, abs=1e-6)

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.25, 0.6, 1.7])
    def test_binary_concrete_is_normalised_on_the_unit_interval(self, backend, temperature):
        """Integrated in u = logit x (dx/du = x (1 - x)).  A float64 x near 1 does not
        resolve 1 - x, so the upper half (x > 1/2) is integrated as the lower half of the
        mirror image, ``p_a(1 - x) = p_{-a}(x)`` (Eq. 21 with alpha -> 1/alpha)."""
        half_width = 40.0 / temperature

        def lower_half_mass(a):
            dist = backend.make("BinaryConcrete", temperature, np.array(a))

            def integrand(u):
                x = R.expit(u[:, 0])
                return np.exp(backend.log_prob(dist, x) + np.log(x * R.expit(-u[:, 0])))

            res = integrate.cubature(integrand, [-half_width], [0.0], rtol=1e-9, atol=1e-12)
            assert res.status == "converged"
            return float(res.estimate)

        assert lower_half_mass(0.7) + lower_half_mass(-0.7) == pytest.approx(1, abs=1e-6)

    @HEAVY
    @pytest.mark.parametrize("kwargs", [{}, HARD_KW], ids=["default-stretch", "custom-stretch"])
    @pytest.mark.parametrize("temperature", [0.3, 2 / 3, 1.5])
    def test_hard_concrete_total_mass_is_one(self, backend, temperature, kwargs):
        dist = backend.make("HardConcrete", temperature, np.array(-0.4), **kwargs)
        res = integrate.cubature(
            lambda z: np.exp(backend.log_prob(dist, z[:, 0])), [0.0], [1.0], rtol=1e-11
        )
        atoms = np.exp(backend.log_prob(dist, np.array([0.0, 1.0]))).sum()
        assert float(res.estimate) + atoms == pytest.approx(1, abs=1e-8)

    # -- log_prob against the reference -------------------------------------------------

    @pytest.mark.parametrize("n", light_only([2, 5, 20], {5}))
    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_log_prob_matches_float64_reference(self, backend, name, n):
        rng = np.random.default_rng(30 + n)
        temperature = np.array([[0.05], [0.3], [1.0], [3.0]])
        logits = _logits(rng, name, (3,), n, scale=3.0)
        dist = backend.make(name, temperature, logits, **_kwargs(name))
        got, expected = scored_and_expected(
            backend, dist, name, logits, temperature, rng, (10,), n, **_kwargs(name)
        )
        assert np.isfinite(expected).all()
        _assert_close(got, expected, rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("kwargs", [{}, HARD_KW], ids=["default-stretch", "custom-stretch"])
    def test_hard_concrete_gate_probabilities_match_reference(self, backend, kwargs):
        logits = np.array([-3.0, -0.5, 0.0, 2.0])
        temperature = np.array([[2 / 3], [0.2]])
        dist = backend.make("HardConcrete", temperature, logits, **kwargs)
        log_p0 = R.hard_concrete_log_p0(logits, temperature, **kwargs)
        log_p1 = R.hard_concrete_log_p1(logits, temperature, **kwargs)
        _assert_close(backend.quantity(dist, "log_prob_zero"), log_p0, rtol=1e-12)
        _assert_close(backend.quantity(dist, "log_prob_one"), log_p1, rtol=1e-12)
        _assert_close(backend.quantity(dist, "prob_nonzero"), -np.expm1(log_p0), rtol=1e-12)
        _assert_close(backend.log_prob(dist, np.zeros((2, 4))), log_p0, rtol=1e-12)
        _assert_close(backend.log_prob(dist, np.ones((2, 4))), log_p1, rtol=1e-12)

    # -- goodness of fit ----------------------------------------------------------------

    @HEAVY
    @pytest.mark.parametrize(
        "name, n, temperature",
        [
            ("ExpConcrete", 2, 0.3),
            ("ExpConcrete", 2, 2.0),
            ("Concrete", 2, 0.3),
            ("Concrete", 2, 2.0),
            ("LogitBinaryConcrete", None, 0.3),
            ("LogitBinaryConcrete", None, 1.5),
            ("BinaryConcrete", None, 0.6),
            ("BinaryConcrete", None, 2.0),
        ],
    )
    def test_samples_fit_log_prob(self, backend, name, n, temperature):
        """``pyro.distributions.testing.gof``: spacings of the sorted samples scaled by the
        density are Exp(1).  (Its nearest-neighbour test for dimension >= 2 rejects about
        10% of samples from a correct 2-d Gaussian at p < 1e-3: mutual nearest neighbours
        repeat a distance; the two-dimensional case is the binned test below.)"""
        logits = _logits(np.random.default_rng(40), name, (), n)
        dist = backend.make(name, temperature, logits)
        draw = backend.sample(dist, (6000,), seed=41)
        density = np.exp(backend.log_prob(dist, draw))
        # the coordinate of the density's base measure: x_1 (y_1) of (x_1, x_2)
        samples = draw.value[:, 0] if name in CATEGORICAL else draw.value
        gof = auto_goodness_of_fit(torch.from_numpy(samples), torch.from_numpy(density))
        assert gof > P_MIN

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.3, 0.7, 2.0])
    @pytest.mark.parametrize("name", ["ExpConcrete", "Concrete"])
    def test_samples_fit_log_prob_in_two_dimensions(self, backend, name, temperature):
        """n = 3: samples binned on a 4 x 4 grid of the chart u = y[:-1] - y[-1] (edges at
        the quartiles of a pilot sample) against cell probabilities integrated from
        ``log_prob`` (times the reference Jacobian), Pearson's chi-square."""
        logits = np.random.default_rng(46).normal(size=3)
        dist = backend.make(name, temperature, logits)

        def chart(draw):
            y = draw.value if name == "ExpConcrete" else np.log(draw.value)
            return y[:, :-1] - y[:, -1:]

        def density(u):
            y = R.log_simplex_from_chart(u)
            if name == "ExpConcrete":
                return np.exp(backend.log_prob(dist, y) + R.exp_concrete_chart_log_jacobian(u))
            return np.exp(backend.log_prob(dist, np.exp(y)) + R.concrete_chart_log_jacobian(u))

        pilot = chart(backend.sample(dist, (2000,), seed=47))
        width = 40.0 / temperature
        edges = [
            np.concatenate([[-width], np.quantile(pilot[:, i], [0.25, 0.5, 0.75]), [width]])
            for i in range(2)
        ]
        u = chart(backend.sample(dist, (4000,), seed=48))
        counts = np.histogram2d(u[:, 0], u[:, 1], bins=edges)[0]
        probs = np.zeros((4, 4))
        for i, j in np.ndindex(4, 4):
            lo, hi = [edges[0][i], edges[1][j]], [edges[0][i + 1], edges[1][j + 1]]
            res = integrate.cubature(density, lo, hi, rtol=1e-6, atol=1e-9)
            assert res.status == "converged"
            probs[i, j] = res.estimate
        assert counts.sum() == 4000 and probs.sum() == pytest.approx(1, abs=1e-5)
        assert _chi_square_p(counts.ravel(), probs.ravel() / probs.sum()) > P_MIN

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.3, 2 / 3, 1.5])
    def test_hard_concrete_interior_samples_fit_log_prob(self, backend, temperature):
        logits = np.array(0.3)
        dist = backend.make("HardConcrete", temperature, logits)
        draw = backend.sample(dist, (8000,), seed=42)
        z = draw.value
        inside = (z > 0) & (z < 1)
        p_inside = (
            1
            - np.exp(R.hard_concrete_log_p0(logits, temperature))
            - np.exp(R.hard_concrete_log_p1(logits, temperature))
        )
        density = np.exp(backend.log_prob(dist, z[inside])) / p_inside
        gof = auto_goodness_of_fit(torch.from_numpy(z[inside]), torch.from_numpy(density))
        assert gof > P_MIN

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.1, 2 / 3, 1.5])
    def test_hard_concrete_atoms_have_reference_frequencies(self, backend, temperature):
        logits = np.array([-1.0, 0.5, 2.0])
        dist = backend.make("HardConcrete", temperature, logits)
        z = backend.sample(dist, (20000,), seed=43).value
        p0 = np.exp(R.hard_concrete_log_p0(logits, temperature))
        p1 = np.exp(R.hard_concrete_log_p1(logits, temperature))
        for k in range(3):
            counts = [
                (z[:, k] == 0).sum(),
                ((z[:, k] > 0) & (z[:, k] < 1)).sum(),
                (z[:, k] == 1).sum(),
            ]
            assert _chi_square_p(counts, [p0[k], 1 - p0[k] - p1[k], p1[k]]) > P_MIN

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
    @pytest.mark.parametrize("name", list(STRAIGHT_THROUGH))
    def test_straight_through_hard_values_follow_the_discrete_distribution(
        self, backend, name, temperature
    ):
        rng = np.random.default_rng(44)
        n = 4
        logits = _logits(rng, name, (), n)
        dist = backend.make(name, temperature, logits)
        v = backend.sample(dist, (20000,), seed=45).value
        if name == "ConcreteStraightThrough":
            assert _chi_square_p(v.sum(0), R.softmax(logits)) > P_MIN
        else:
            assert stats.binomtest(int(v.sum()), v.size, R.expit(logits)).pvalue > P_MIN

    # -- Proposition 1 of the paper ------------------------------------------------------

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.1, 1.0, 5.0])
    @pytest.mark.parametrize("name", ["ExpConcrete", "Concrete"])
    def test_rounding_argmax_probability_is_softmax_of_logits(self, backend, name, temperature):
        logits = np.random.default_rng(50).normal(size=5)
        dist = backend.make(name, temperature, logits, dtype="float32")
        v = backend.sample(dist, (20000,), seed=51).value
        counts = np.bincount(v.argmax(-1), minlength=5)
        assert _chi_square_p(counts, R.softmax(logits)) > P_MIN

    @HEAVY
    @pytest.mark.parametrize("temperature", [0.1, 1.0, 5.0])
    @pytest.mark.parametrize("name", ["LogitBinaryConcrete", "BinaryConcrete", "HardConcrete"])
    def test_rounding_probability_above_one_half_is_sigmoid_of_logits(
        self, backend, name, temperature
    ):
        """``P(X > 1/2) = sigmoid(log alpha)``; for HardConcrete with its default symmetric
        stretch (-0.1, 1.1), ``Z > 1/2`` iff the Binary Concrete inside is."""
        logits = np.array([-1.2, 0.4])
        dist = backend.make(name, temperature, logits, dtype="float32")
        v = backend.sample(dist, (20000,), seed=52).value
        threshold = 0.0 if name == "LogitBinaryConcrete" else 0.5
        for k in range(2):
            hits = int((v[:, k] > threshold).sum())
            assert stats.binomtest(hits, v.shape[0], R.expit(logits[k])).pvalue > P_MIN

    @HEAVY
    @pytest.mark.parametrize("name", list(SCORED_AT_VALUES))
    def test_zero_temperature_limit_gives_one_hot_samples(self, backend, name):
        """At lambda = 1e-4 a sample is within 1e-2 of a vertex except with probability
        ~ lambda log(100 n) (the top two perturbed logits must nearly tie)."""
        n = 5
        logits = _logits(np.random.default_rng(53), name, (), n)
        dist = backend.make(name, 1e-4, logits, dtype="float32")
        v = backend.sample(dist, (2000,), seed=54).value.astype(np.float64)
        if name == "ExpConcrete":
            near = v.max(-1) > math.log(0.99)
        elif name == "Concrete":
            near = v.max(-1) > 0.99
        elif name == "LogitBinaryConcrete":
            near = np.abs(v) > logit(0.99)
        elif name == "BinaryConcrete":
            near = np.minimum(v, 1 - v) < 0.01
        else:
            near = (v == 0) | (v == 1)
        assert near.mean() >= 0.99

    @HEAVY
    @pytest.mark.parametrize("name, n", [("Concrete", 3), ("Concrete", 4), ("BinaryConcrete", 2)])
    @pytest.mark.parametrize("fraction", [0.5, 1.0])
    def test_density_is_log_convex_when_temperature_at_most_one_over_n_minus_one(
        self, backend, name, n, fraction
    ):
        rng = np.random.default_rng(55)
        temperature = fraction / (n - 1)
        if name == "Concrete":
            logits = rng.normal(size=n)
            x0, x1 = (R.softmax(rng.normal(size=(200, n)), axis=-1) for _ in range(2))
        else:
            logits = np.array(rng.normal())
            x0, x1 = (R.expit(2 * rng.normal(size=200)) for _ in range(2))
        t = rng.uniform(size=200)
        dist = backend.make(name, temperature, logits)
        mix = (
            t[:, None] * x0 + (1 - t[:, None]) * x1 if name == "Concrete" else t * x0 + (1 - t) * x1
        )
        lhs = backend.log_prob(dist, mix)
        rhs = t * backend.log_prob(dist, x0) + (1 - t) * backend.log_prob(dist, x1)
        assert (lhs <= rhs + 1e-9 * (1 + np.abs(rhs))).all()

    # -- gradients (float64, finite differences of the reference) ----------------------

    @pytest.mark.parametrize("name", SCORED_AT_VALUES)
    def test_log_prob_gradients_match_finite_differences(self, backend, name):
        rng = np.random.default_rng(60)
        n = 4
        temperature = np.array(0.7)
        logits = _logits(rng, name, (3,), n)
        value = interior_points(name, rng, (5, 3), n)
        kwargs = _kwargs(name)
        lp, grads = backend.grad_log_prob(name, temperature, logits, value, **kwargs)

        def ref(v=value, a=logits, t=temperature):
            return reference_log_prob(name, v, a, t, **kwargs)

        _assert_close(lp, ref(), rtol=1e-10, atol=1e-10)
        fd_logits = _central_difference(lambda a: ref(a=a).sum(), logits, 1e-6)
        _assert_close(grads["logits"], fd_logits, rtol=1e-6, atol=1e-6)
        fd_temperature = _central_difference(lambda t: ref(t=t).sum(), temperature, 1e-6)
        _assert_close(grads["temperature"], fd_temperature, rtol=1e-6, atol=1e-6)

        g = grads["value"]
        if name in ("LogitBinaryConcrete", "BinaryConcrete", "HardConcrete"):
            # elementwise: d/dv log p(v) by central differences (HardConcrete: inside (0, 1))
            h = 1e-6
            inside = (
                (value > 0) & (value < 1) if name == "HardConcrete" else np.ones(value.shape, bool)
            )
            fd = (ref(v=value + h) - ref(v=value - h)) / (2 * h)
            _assert_close(g[inside], fd[inside], rtol=1e-6, atol=1e-6)
            return
        # On the (log-)simplex only tangent directions are meaningful: move along the
        # chart u = y[:-1] - y[-1] and compare the directional derivative.
        y = value if name == "ExpConcrete" else np.log(value)
        u = y[..., :-1] - y[..., -1:]
        h = 1e-6
        for j in range(n - 1):
            e = np.zeros(n - 1)
            e[j] = 1.0
            y_plus, y_minus = (
                R.log_simplex_from_chart(u + h * e),
                R.log_simplex_from_chart(u - h * e),
            )
            if name == "Concrete":
                y_plus, y_minus = np.exp(y_plus), np.exp(y_minus)
            fd = (ref(v=y_plus) - ref(v=y_minus)) / (2 * h)
            x = np.exp(y)
            e_full = np.append(e, 0.0)
            # d y / d u_j = e_j - x_j 1 ;  d x / d u_j = x * (e_j - x_j)
            tangent = e_full - x[..., j : j + 1]
            if name == "Concrete":
                tangent = x * tangent
            _assert_close((g * tangent).sum(-1), fd, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize(
        "name", light_only(CLASS_NAMES, {"ExpConcrete", "BinaryConcreteStraightThrough"})
    )
    def test_rsample_gradient_matches_finite_differences_with_common_random_numbers(
        self, backend, name
    ):
        """The pathwise gradient of ``sum(w * rsample())`` against central differences of the
        same function with the same noise (same seed); for a straight-through class the
        differences are those of the relaxed sample it carries: its gradient is the relaxed
        one."""
        rng = np.random.default_rng(61)
        n = 4
        shape = (6,)
        temperature = np.array(0.6)
        logits = _logits(rng, name, (2,), n)
        event = _event(name, n)
        weights = rng.normal(size=(*shape, 2, *event))
        kwargs = _kwargs(name)
        value, grads = backend.grad_sample(name, temperature, logits, shape, 62, weights, **kwargs)

        def f(a=logits, t=temperature):
            dist = backend.make(name, t, a, **kwargs)
            draw = backend.sample(dist, shape, seed=62)
            v = backend.relaxed_value(dist, draw) if name in STRAIGHT_THROUGH else draw.value
            return (weights * v).sum()

        _assert_close(
            grads["logits"],
            _central_difference(lambda a: f(a=a), logits, 1e-6),
            rtol=1e-6,
            atol=1e-7,
        )
        fd_t = _central_difference(lambda t: f(t=t), temperature, 1e-6)
        _assert_close(grads["temperature"], fd_t, rtol=1e-6, atol=1e-7)
        if name in STRAIGHT_THROUGH:
            assert ((value == 0) | (value == 1)).all()  # the forward value stays hard

    # -- float32 numerics --------------------------------------------------------------

    SWEEP = [
        (n, t) if (n, t) == (50, 0.01) else pytest.param(n, t, marks=HEAVY)
        for n in (10, 50)
        for t in (1.0, 0.5, 0.1, 0.05, 0.01)
    ]

    @pytest.mark.parametrize("n, temperature", SWEEP)
    @pytest.mark.parametrize("name", ["ExpConcrete", "LogitBinaryConcrete"])
    def test_log_space_class_has_finite_log_prob_and_gradient_in_float32(
        self, backend, name, n, temperature
    ):
        """logits ~ N(0, 3^2): every own sample has a finite log_prob and the pathwise
        gradient of the single-sample ELBO term w.r.t. the logits is finite."""
        logits = 3.0 * np.random.default_rng(70 + n).normal(size=n)
        lp, g = backend.grad_log_prob_of_own_sample(
            name, temperature, logits, (1000,), seed=71, dtype="float32"
        )
        assert lp.dtype == np.float32
        assert np.isfinite(lp).all()
        assert np.isfinite(g).all()

    @pytest.mark.parametrize("n, temperature", SWEEP)
    @pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
    def test_float32_samples_are_scored_at_their_exact_log_space_value(
        self, backend, name, n, temperature
    ):
        """No NaN and no clamping: ``log_prob`` of an own float32 sample (whose coordinates
        may have underflowed to 0 or rounded to 1) equals the float64 reference at the exact
        log-space value the sample was computed from; its logits gradient is never NaN."""
        logits = 3.0 * np.random.default_rng(72 + n).normal(size=n)
        dist = backend.make(name, temperature, logits, dtype="float32")
        draw = backend.sample(dist, (1000,), seed=73)
        lp = backend.log_prob(dist, draw)
        y = backend.log_space_value(dist, draw).astype(np.float64)
        x = draw.value.astype(np.float64)
        # the parameters as the float32 distribution holds them
        a = logits.astype(np.float32).astype(np.float64)
        t = float(np.float32(temperature))
        if temperature <= 0.05:  # the regime that matters is exercised: x hit 0 (or 1)
            assert (x == 0).any() and np.abs(y).max() > 200
        if name == "Concrete":
            assert np.abs(x - np.exp(y)).max() <= 1e-6  # y is the log of this value
            expected = R.concrete_log_density_at_log(y, a, t)
            scale = np.abs(a).sum() + (t + 1) * np.abs(y).sum(-1) + n * (1 + np.abs(t * y).max(-1))
        else:
            assert np.abs(x - R.expit(y)).max() <= 1e-6
            expected = R.binary_concrete_log_density_at_logit(y, a, t)
            scale = 4 + np.abs(a) + (t + 2) * np.abs(y)
        assert not np.isnan(lp).any()
        assert np.isfinite(lp).all()
        assert (np.abs(lp - expected) <= 1e-5 * scale).all()
        _, g = backend.grad_log_prob_of_own_sample(name, temperature, logits, (1000,), seed=73)
        assert not np.isnan(g).any()

    @pytest.mark.parametrize("temperature", light_only([1.0, 0.1, 0.01], {0.01}))
    @pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
    def test_float32_log_prob_is_finite_strictly_inside_the_support(
        self, backend, name, temperature
    ):
        # down to the smallest normal float32 (XLA on CPU flushes subnormals to zero, and
        # an exact zero is the boundary, scored by its limit)
        tiny = [float(np.finfo(np.float32).tiny), 1e-30, 1e-10, 1e-7]
        if name == "Concrete":
            logits = np.array([0.5, -2.0, 1.0, 3.0])
            x = np.array([[t, t, t, 1.0] for t in tiny] + [[0.25] * 4], dtype=np.float32)
            x[:, -1] = 1 - x[:, :-1].sum(-1, dtype=np.float32)
            expected = R.concrete_log_density(x.astype(np.float64), logits, temperature)
        else:
            logits = np.array(1.5)
            x = np.array([*tiny, 0.5, 1 - 2**-24, 1 - 2**-23], dtype=np.float32)
            expected = R.binary_concrete_log_density(x.astype(np.float64), logits, temperature)
        dist = backend.make(name, temperature, logits, dtype="float32")
        lp = backend.log_prob(dist, x)
        assert np.isfinite(lp).all()
        _assert_close(lp, expected, rtol=1e-5)

    @pytest.mark.parametrize("offset", [0.0, 100.0, 1000.0])
    @pytest.mark.parametrize("name", ["ExpConcrete", "Concrete"])
    def test_float32_log_prob_keeps_its_precision_at_any_offset_of_the_logits(
        self, backend, name, offset
    ):
        # log alpha + c is the same distribution; float32 sums such as log alpha - lambda y
        # taken at the offset as given lose precision in proportion to |c| (4 of these 6
        # cases fail so); a temperature at which no float32 Concrete coordinate underflows
        rng = np.random.default_rng(91)
        temperature, n = 0.5, 10
        logits = (3 * rng.normal(size=(500, n)) + offset).astype(np.float32)
        exact = logits.astype(np.float64)
        gumbel = -np.log(-np.log(rng.uniform(size=(500, n))))
        y = (exact + gumbel) / temperature
        y = log_softmax(y, -1).astype(np.float32)
        if name == "ExpConcrete":
            value, expected = (
                y,
                R.exp_concrete_log_density(y.astype(np.float64), exact, temperature),
            )
        else:
            value = np.exp(y.astype(np.float64))
            value = (value / value.sum(-1, keepdims=True)).astype(np.float32)
            expected = R.concrete_log_density(value.astype(np.float64), exact, temperature)
        got = backend.log_prob(backend.make(name, temperature, logits, dtype="float32"), value)
        assert np.abs(got - expected).max() < 1e-4

    @pytest.mark.parametrize("dtype", light_only(["float32", "float64"], {"float32"}))
    @pytest.mark.parametrize("temperature", light_only([0.3, 0.5, 1.0, 2.0, 3.0], {0.5}))
    @pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
    def test_boundary_values_score_the_density_limit(self, backend, name, temperature, dtype):
        """At exact zeros (and ones) the value is the limit of the density, +inf, -inf or
        finite, never NaN; no gradient is NaN."""
        if name == "Concrete":
            logits = np.array([0.3, -0.4, 1.1])
            value = np.array([[0.0, 0.3, 0.7], [0.0, 0.0, 1.0], [0.6, 0.0, 0.4]])
            expected = R.concrete_boundary_log_density(value, logits, temperature)
        else:
            logits = np.array(0.8)
            value = np.array([0.0, 1.0])
            expected = R.binary_concrete_boundary_log_density(value, logits, temperature)
        dist = backend.make(name, temperature, logits, dtype=dtype)
        lp = backend.log_prob(dist, value)
        assert not np.isnan(lp).any()
        assert (np.isinf(lp) == np.isinf(expected)).all() and (
            lp[np.isinf(lp)] == expected[np.isinf(lp)]
        ).all()
        finite = np.isfinite(expected)
        _assert_close(lp[finite], expected[finite], rtol=1e-5 if dtype == "float32" else 1e-10)
        _, grads = backend.grad_log_prob(name, np.array(temperature), logits, value, dtype=dtype)
        for g in grads.values():
            assert not np.isnan(g).any()

    # -- validation -----------------------------------------------------------------

    @pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_invalid_temperature_raises_value_error_naming_it(self, backend, name, bad):
        logits = _logits(np.random.default_rng(80), name, (2,), 3)
        for temperature in (bad, np.array([1.0, bad])):
            with pytest.raises(ValueError, match="temperature"):
                backend.make(name, temperature, logits, validate_args=True)

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_nan_logits_raise_value_error_naming_them(self, backend, name):
        logits = _logits(np.random.default_rng(81), name, (2,), 3)
        logits.flat[0] = np.nan
        with pytest.raises(ValueError, match="logits"):
            backend.make(name, 0.5, logits, validate_args=True)

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_invalid_probs_raise_value_error_naming_them(self, backend, name):
        probs = np.array([0.5, 0.7, -0.2]) if name in CATEGORICAL else np.array([0.5, 1.5])
        with pytest.raises(ValueError, match="probs"):
            backend.make(name, 0.5, probs=probs, validate_args=True)

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_both_or_neither_of_probs_and_logits_raise_value_error(self, backend, name):
        logits = _logits(np.random.default_rng(82), name, (), 3)
        probs = R.softmax(logits) if name in CATEGORICAL else R.expit(logits)
        with pytest.raises(ValueError, match=r"probs.*logits|logits.*probs"):
            backend.make(name, 0.5, logits, probs=probs)
        with pytest.raises(ValueError, match=r"probs.*logits|logits.*probs"):
            backend.make(name, 0.5)

    OUTSIDE = {
        "ExpConcrete": [[-0.1, -0.2, -0.3], [0.0, -np.inf, 0.0], [np.nan, 0.0, -np.inf]],
        "Concrete": [[0.5, 0.6, 0.1], [1.2, -0.2, 0.0], [np.nan, 0.5, 0.5]],
        "ConcreteStraightThrough": [[0.2, 0.8, 0.0], [1.0, 1.0, 0.0]],
        "LogitBinaryConcrete": [np.nan],
        "BinaryConcrete": [1.5, -0.1, np.nan],
        "HardConcrete": [1.2, -0.1, np.nan],
        "BinaryConcreteStraightThrough": [0.3, 2.0],
    }

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_value_outside_the_support_follows_the_backend_convention(self, backend, name):
        """Under validation: torch's ``ValueError`` in Pyro, NumPyro's warning and ``-inf``."""
        logits = np.array([0.1, -0.3, 0.5]) if name in CATEGORICAL else np.array(0.2)
        dist = backend.make(name, 0.5, logits, validate_args=True)
        for value in self.OUTSIDE[name]:
            if backend.outside_support_raises:
                with pytest.raises(ValueError, match=r"(?i)value|support"):
                    backend.log_prob(dist, np.array(value))
                continue
            with pytest.warns(UserWarning, match="Out-of-support"):
                log_p = backend.log_prob(dist, np.array(value))
            assert log_p == -np.inf

    # -- pickling, moments, entropy ------------------------------------------------------

    @pytest.mark.parametrize(
        "name", light_only(CLASS_NAMES, {"Concrete", "ConcreteStraightThrough"})
    )
    def test_pickle_round_trip_preserves_the_distribution(self, backend, name):
        rng = np.random.default_rng(90)
        n = 4
        temperature = np.array([[0.5], [1.3]])
        logits = _logits(rng, name, (3,), n)
        dist = backend.make(name, temperature, logits, **_kwargs(name))
        copy = backend.pickle_round_trip(dist)
        assert type(copy) is type(dist)
        assert backend.batch_shape(copy) == (2, 3)
        assert backend.event_shape(copy) == _event(name, n)
        np.testing.assert_array_equal(
            backend.sample(copy, (5,), seed=91).value, backend.sample(dist, (5,), seed=91).value
        )
        got, expected = scored_and_expected(
            backend, copy, name, logits, temperature, rng, (5,), n, **_kwargs(name)
        )
        _assert_close(got, expected, rtol=1e-9, atol=1e-9)

    def test_logit_binary_concrete_moments_and_entropy_are_the_logistic_ones(self, backend):
        logits = np.array([-1.0, 0.0, 2.5])
        temperature = np.array([[0.1], [0.7], [3.0]])
        dist = backend.make("LogitBinaryConcrete", temperature, logits)
        logistic = stats.logistic(loc=logits / temperature, scale=1 / temperature)
        _assert_close(backend.quantity(dist, "mean"), logistic.mean(), rtol=1e-12)
        _assert_close(backend.quantity(dist, "mode"), logistic.median(), rtol=1e-12)  # symmetric
        _assert_close(backend.quantity(dist, "variance"), logistic.var(), rtol=1e-12)
        _assert_close(backend.quantity(dist, "entropy"), logistic.entropy(), rtol=1e-12)
        _assert_close(
            backend.quantity(dist, "entropy"),
            R.logistic_entropy(temperature) + 0 * logits,
            rtol=1e-12,
        )

    @pytest.mark.parametrize("name", list(STRAIGHT_THROUGH))
    def test_straight_through_mean_is_probs_and_mode_is_the_rounded_logits(self, backend, name):
        rng = np.random.default_rng(92)
        logits = _logits(rng, name, (3,), 4)
        dist = backend.make(name, 0.5, logits)
        if name == "ConcreteStraightThrough":
            mean, mode = R.softmax(logits, axis=-1), _one_hot_argmax(logits)
        else:
            mean, mode = R.expit(logits), (logits > 0).astype(np.float64)
        _assert_close(backend.quantity(dist, "mean"), mean, rtol=1e-12)
        np.testing.assert_array_equal(backend.quantity(dist, "mode"), mode)

    @pytest.mark.parametrize(
        "name, quantity",
        [(name, q) for name in NO_CLOSED_FORM for q in ("mean", "mode", "variance", "entropy")]
        + [(name, "entropy") for name in STRAIGHT_THROUGH],
    )
    def test_quantity_without_closed_form_raises_not_implemented(self, backend, name, quantity):
        logits = np.array([0.2, -0.1, 0.4]) if name in CATEGORICAL else np.array(0.2)
        dist = backend.make(name, 0.5, logits)
        with pytest.raises(NotImplementedError):
            backend.quantity(dist, quantity)

    # -- straight-through -------------------------------------------------------------

    @pytest.mark.parametrize("dtype", light_only(["float32", "float64"], {"float64"}))
    @pytest.mark.parametrize("name", list(STRAIGHT_THROUGH))
    def test_straight_through_value_is_exactly_the_rounded_relaxed_sample(
        self, backend, name, dtype
    ):
        rng = np.random.default_rng(93)
        logits = _logits(rng, name, (3,), 4)
        dist = backend.make(name, np.array([[0.1], [1.0]]), logits, dtype=dtype)
        draw = backend.sample(dist, (5,), seed=94)
        relaxed = backend.relaxed_value(dist, draw)
        assert relaxed.shape == draw.value.shape
        if name == "ConcreteStraightThrough":
            expected = _one_hot_argmax(relaxed)
        else:
            expected = (relaxed > 0.5).astype(np.float64)
        np.testing.assert_array_equal(draw.value, expected)
        assert backend.in_support(dist, draw).all()

    @pytest.mark.parametrize("name", list(STRAIGHT_THROUGH))
    def test_straight_through_log_prob_is_the_relaxed_density(self, backend, name):
        rng = np.random.default_rng(95)
        logits = _logits(rng, name, (3,), 4)
        temperature = np.array([[0.2], [0.9]])
        dist = backend.make(name, temperature, logits)
        draw = backend.sample(dist, (5,), seed=96)
        relaxed = backend.relaxed_value(dist, draw)
        y = backend.log_space_value(dist, draw)  # exact, where `relaxed` rounded to a vertex
        exact = np.exp(y) if name == "ConcreteStraightThrough" else R.expit(y)
        _assert_close(relaxed, exact, rtol=1e-12, atol=1e-300)
        expected = reference_log_prob_at_log_space(name, y, logits, temperature)
        _assert_close(backend.log_prob(dist, draw), expected, rtol=1e-10, atol=1e-10)

    # -- own samples at any width, errors that say what was passed -----------------------

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    @pytest.mark.parametrize("n", light_only([10_000, 100_000], {10_000}))
    @pytest.mark.parametrize("name", ["ExpConcrete", "Concrete", "ConcreteStraightThrough"])
    def test_own_samples_pass_validation_at_any_width(self, backend, name, n, dtype):
        """Own samples lie in the support as validation checks it (a simplex sums to 1
        within 1e-6) and are scored, for n up to 1e5 categories."""
        logits = np.random.default_rng(100).normal(size=n)
        dist = backend.make(name, 0.5, logits, dtype=dtype, validate_args=True)
        draw = backend.sample(dist, (20,), seed=101)
        assert backend.in_support(dist, draw).all()
        assert np.isfinite(backend.log_prob(dist, draw)).all()

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_mismatched_shapes_name_both_arguments_and_their_shapes(self, backend, name):
        logits = _logits(np.random.default_rng(102), name, (3,), 4)
        for validate_args in (True, False):
            with pytest.raises(ValueError, match=rf"^{name}\b") as info:
                backend.make(name, np.ones(2), logits, validate_args=validate_args)
            message = str(info.value)
            assert "`temperature`" in message and "(2,)" in message
            assert "`logits`" in message and str(logits.shape) in message

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_invalid_argument_error_names_the_class_built_and_shows_the_values_passed(
        self, backend, name
    ):
        """The error names the class the user built (not the log-space class inside it) and
        shows the logits as given, not after normalisation."""
        logits = np.array([0.0, np.nan, 1.0]) if name in CATEGORICAL else np.array([0.5, np.nan])
        with pytest.raises(ValueError, match=rf"^{name}\b.*`logits`") as info:
            backend.make(name, 0.5, logits, validate_args=True)
        shown = r"0\.,\s+nan,\s+1\." if name in CATEGORICAL else r"0\.50*,\s+nan"
        assert re.search(shown, str(info.value)), str(info.value)
        with pytest.raises(ValueError, match=rf"^{name}\b.*`temperature`"):
            backend.make(name, -1.0, np.zeros_like(logits), validate_args=True)

    @pytest.mark.parametrize("validate_args", [True, False])
    @pytest.mark.parametrize("name", CATEGORICAL)
    def test_log_prob_of_the_wrong_event_size_names_the_event_shape(
        self, backend, name, validate_args
    ):
        dist = backend.make(name, 0.5, np.zeros(3), validate_args=validate_args)
        with pytest.raises(ValueError, match=r"event shape \(3,\)"):
            backend.log_prob(dist, np.full(4, 0.25))

    # -- impossible categories: -inf logits ---------------------------------------------

    MASKED_LOGITS = np.array([[0.4, -np.inf, -0.3, 1.1], [-np.inf, 0.2, -np.inf, -0.5]])

    @pytest.mark.parametrize("dtype", light_only(["float32", "float64"], {"float64"}))
    @pytest.mark.parametrize("temperature", light_only([0.05, 0.7], {0.7}))
    @pytest.mark.parametrize("name", CATEGORICAL)
    def test_minus_inf_logits_are_impossible_categories(self, backend, name, temperature, dtype):
        """Exact zeros (ExpConcrete: -inf) on impossible categories; own samples in the
        support and scored by the density on the face of the possible ones (the float64
        reference with the impossible categories left out)."""
        logits = self.MASKED_LOGITS
        face = np.isfinite(logits)
        dist = backend.make(name, temperature, logits, dtype=dtype, validate_args=True)
        draw = backend.sample(dist, (50,), seed=103)
        assert backend.in_support(dist, draw).all()
        off = np.broadcast_to(~face, draw.value.shape)
        if name == "ExpConcrete":
            assert (draw.value[off] == -np.inf).all() and np.isfinite(draw.value[~off]).all()
            y = draw.value
        else:
            assert (draw.value[off] == 0).all()
            y = backend.log_space_value(dist, draw)
        lp = backend.log_prob(dist, draw)
        assert np.isfinite(lp).all()
        for row in range(2):
            args = (y[:, row][:, face[row]], logits[row, face[row]], temperature)
            if name == "ExpConcrete":
                expected = R.exp_concrete_log_density(*args)
            else:
                expected = R.concrete_log_density_at_log(*args)
            rtol = 1e-9 if dtype == "float64" else 2e-4
            _assert_close(lp[:, row], expected, rtol=rtol, atol=rtol)

    @pytest.mark.parametrize("name", ["ExpConcrete", "Concrete"])
    def test_minus_inf_logits_score_values_on_the_face_and_none_off_it(self, backend, name):
        logits = np.array([0.4, -np.inf, -0.3])
        x = np.array([[0.3, 0.0, 0.7], [0.9, 0.0, 0.1], [0.3, 0.2, 0.5]])
        with np.errstate(divide="ignore"):
            value = np.log(x) if name == "ExpConcrete" else x
        dist = backend.make(name, 0.6, logits)
        lp = backend.log_prob(dist, value)
        face = np.isfinite(logits)
        reference = R.exp_concrete_log_density if name == "ExpConcrete" else R.concrete_log_density
        face_values = value[:2][:, face]
        _assert_close(lp[:2], reference(face_values, logits[face], 0.6), rtol=1e-10)
        assert lp[2] == -np.inf  # mass on an impossible category

    @pytest.mark.parametrize("name", CATEGORICAL)
    def test_minus_inf_logits_have_finite_gradients(self, backend, name):
        """No NaN through -inf logits (the double-where trap): pathwise gradients of a
        sample and of the log density of an own sample are finite, zero on the impossible
        categories."""
        logits = self.MASKED_LOGITS
        weights = np.random.default_rng(104).normal(size=(5, *logits.shape))
        if name == "ExpConcrete":
            weights = np.where(np.isfinite(logits), weights, 0.0)  # -inf * 0 is NaN
        _, grads = backend.grad_sample(name, 0.4, logits, (5,), 105, weights)
        assert np.isfinite(grads["logits"]).all() and np.isfinite(grads["temperature"]).all()
        assert (grads["logits"][~np.isfinite(logits)] == 0).all()
        lp, g = backend.grad_log_prob_of_own_sample(name, 0.4, logits, (5,), 106)
        assert np.isfinite(lp).all() and np.isfinite(g).all()
        assert (g[~np.isfinite(logits)] == 0).all()

    @pytest.mark.parametrize("name", CLASS_NAMES)
    def test_infinite_logits_that_leave_no_density_raise_value_error_naming_them(
        self, backend, name
    ):
        """+inf, or every category impossible (binary: +/-inf), is a point mass with no
        density: rejected under validation."""
        if name in CATEGORICAL:
            bad = [np.array([0.0, np.inf, 1.0]), np.array([-np.inf, -np.inf])]
        else:
            bad = [np.array([0.0, np.inf]), np.array([-np.inf, 0.3])]
        for logits in bad:
            with pytest.raises(ValueError, match="logits"):
                backend.make(name, 0.5, logits, validate_args=True)

    # -- values on the boundary -----------------------------------------------------------

    @pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
    def test_a_sample_is_scored_at_its_exact_point_by_another_distribution(self, backend, name):
        """A float32 sample that rounded onto the boundary, scored by another distribution
        of its class (a model's prior scoring a guide's sample), gets that distribution's
        density at the sample's exact log-space value, not the boundary's +inf."""
        n = 50
        logits, other = 3.0 * np.random.default_rng(110).normal(size=(2, n))
        if name == "BinaryConcrete":
            logits, other = logits * 4, other * 4
        guide = backend.make(name, 0.03, logits, dtype="float32")
        prior = backend.make(name, 0.03, other, dtype="float32")
        draw = backend.sample(guide, (200,), seed=111)
        x = draw.value
        assert ((x == 0) | (x == 1)).any()  # rounded onto the boundary
        y = backend.log_space_value(guide, draw).astype(np.float64)
        a = other.astype(np.float32).astype(np.float64)
        t = float(np.float32(0.03))
        lp = backend.log_prob(prior, draw)
        assert np.isfinite(lp).all()
        expected = reference_log_prob_at_log_space(name, y, a, t)
        _assert_close(lp, expected, rtol=1e-4, atol=1e-3)

    @pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
    def test_plus_inf_on_the_boundary_warns_what_to_use(self, backend, name):
        """A value on the boundary, without its exact log-space value, scores the density's
        limit (+inf here: lambda < 1, and (n - m) lambda < m for Concrete) and warns, naming
        the log-space class to use (eagerly: NumPyro warns inside jit, unable to check, when
        it traces a value without intermediates)."""
        value = np.array([0.0, 0.3, 0.7]) if name == "Concrete" else np.array(0.0)
        logits = np.zeros(3) if name == "Concrete" else np.array(0.2)
        dist = backend.make(name, 0.3, logits, dtype="float32", validate_args=True)
        log_space = {"Concrete": "ExpConcrete", "BinaryConcrete": "LogitBinaryConcrete"}[name]
        with pytest.warns(RuntimeWarning, match=log_space):
            assert backend.log_prob(dist, value) == np.inf
