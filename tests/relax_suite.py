"""The relaxation workflow, stated once for every backend.

Not collected by itself: ``tests/<backend>/test_relax_suite.py`` subclasses
:class:`RelaxSuite` and provides a ``b`` fixture (``tests/relax_backends.py``).  Models
and guides are written once against ``b``.  Expectations are closed forms or float64
enumerations of the discrete model (``tests/references.py``), never the code under test
run another way.  Sections follow the workflow: temperatures, predictions, time series,
the discrete bound, unrelaxable sites, summaries, pickling.
"""

import math

import numpy as np
import pytest
from scipy.special import expit, logsumexp

from . import references as R
from .relax_backends import backend

TABLE = [-1.0, 0.0, 2.0]
C_PROBS = [0.2, 0.3, 0.5]
SEEN = ["z", "c", "z_seen", "c_seen"]  # two_site_model's sites and what its code received


class two_site_model:
    """A Bernoulli ``z`` and a OneHotCategorical ``c`` in a plate of 4, recording what
    the model's code receives as deterministic sites.  A class holding the backend's
    name, so that it pickles."""

    def __init__(self, b):
        self.backend = b.name

    def __call__(self, x):
        b = backend(self.backend)
        with b.plate("data", 4):
            z = b.sample("z", b.Bernoulli(0.3))
            c = b.sample("c", b.OneHotCategorical(b.array(C_PROBS)))
            b.deterministic("z_seen", z)
            b.deterministic("c_seen", c)
            b.sample("x", b.Normal(z + b.pc.select(b.array(TABLE), c), 1.0), obs=x)


def _site_temperature(b, site):
    return float(b.numpy(_base(site["fn"]).temperature).ravel()[0])


def _base(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _is_hard_binary(x):
    return bool(np.all((x == 0) | (x == 1)))


def _is_one_hot(x):
    return _is_hard_binary(x) and bool(np.all(x.sum(-1) == 1))


class RelaxSuite:
    # --- temperatures -------------------------------------------------------------------

    def test_relax_passes_every_argument_on_to_the_model_including_one_named_temperature(self, b):
        seen = {}

        def model(x, temperature=None):
            seen["temperature"] = temperature
            b.sample("z", b.Bernoulli(0.5))

        trace = b.trace(b.pc.relax(model, temperature=0.4), b.array(0.0), temperature=2.0)
        assert seen["temperature"] == 2.0
        assert _site_temperature(b, trace["z"]) == pytest.approx(0.4)

    def test_prior_and_posterior_temperatures_follow_their_schedules_at_relax_step(self, b):
        prior = b.pc.exponential_decay(1.0, 1e-3, 0.5)
        posterior = b.pc.exponential_decay(2.0, 1e-2, 0.1)
        relaxed = b.pc.relax(two_site_model(b), temperature=prior)
        guide = b.pc.AutoRelaxed(relaxed, temperature=posterior)
        x = b.array(np.zeros(4))
        for kwargs, step in [({}, 0), ({"relax_step": 300}, 300), ({"relax_step": 900}, 900)]:
            model_trace = b.trace(relaxed, x, **kwargs)
            guide_trace = b.trace(guide, x, **kwargs)
            for name in ("z", "c"):
                expected = max(0.5, math.exp(-1e-3 * step))
                assert _site_temperature(b, model_trace[name]) == pytest.approx(expected, 1e-6)
                expected = max(0.1, 2.0 * math.exp(-1e-2 * step))
                assert _site_temperature(b, guide_trace[name]) == pytest.approx(expected, 1e-6)

    def test_a_hand_written_guide_follows_a_schedule_through_the_relax_step_keyword(self, b):
        schedule = b.pc.exponential_decay(1.0, 0.05, 0.3)

        def guide(x, relax_step=0):
            logits = b.param("logits", b.array(np.zeros(4)))
            with b.plate("data", 4):
                b.sample("z", b.pc.LogitBinaryConcrete(schedule(relax_step), logits=logits))
                b.sample("c", b.pc.ExpConcrete(schedule(relax_step), logits=b.array(np.zeros(3))))

        relaxed = b.pc.relax(two_site_model(b), temperature=schedule)
        trace = b.trace(guide, b.array(np.zeros(4)), relax_step=10)
        assert _site_temperature(b, trace["z"]) == pytest.approx(math.exp(-0.5), 1e-6)
        _, losses = b.fit(
            relaxed,
            guide,
            b.array([0.5, -1.0, 2.0, 0.0]),
            steps=5,
            step_kwargs=lambda step: {"relax_step": step},
        )
        assert np.isfinite(losses).all()

    def test_reassigning_the_guide_temperature_raises_and_says_to_pass_a_schedule(self, b):
        guide = b.pc.AutoRelaxed(b.pc.relax(two_site_model(b)), temperature=0.7)
        assert guide.temperature == 0.7
        with pytest.raises(AttributeError, match="schedule"):
            guide.temperature = 0.1

    def test_exponential_decay_is_max_of_floor_and_exponential_and_constant_is_constant(self, b):
        schedule = b.pc.exponential_decay(2.0, 0.01, 0.1)
        for step in [0, 50, 299, 300, 1000]:
            expected = max(0.1, 2.0 * math.exp(-0.01 * step))
            assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
        assert [b.pc.constant_temperature(0.3)(s) for s in (0, 10**6)] == [0.3, 0.3]

    # --- predictions ----------------------------------------------------------------------

    @pytest.fixture
    def trained(self, b):
        model = two_site_model(b)
        relaxed = b.pc.relax(model)
        guide = b.pc.AutoRelaxed(relaxed)
        x = b.array([0.5, -1.0, 2.0, 0.0])
        params, _ = b.fit(relaxed, guide, x, steps=3)
        return model, relaxed, guide, params, x

    def test_predictive_of_relaxed_model_and_guide_gives_log_space_nodes_and_relaxed_seen(
        self, b, trained
    ):
        _, relaxed, guide, params, x = trained
        samples = b.predictive(relaxed, guide, params, 5, x, return_sites=SEEN)
        assert samples["z"].shape == (5, 4) and samples["c"].shape == (5, 4, 3)
        np.testing.assert_allclose(samples["z_seen"], expit(samples["z"]), rtol=1e-5)
        np.testing.assert_allclose(samples["c_seen"], np.exp(samples["c"]), rtol=1e-5)
        assert not _is_hard_binary(samples["z_seen"])

    def test_predictive_of_the_model_with_the_discretized_guide_gives_hard_values(self, b, trained):
        model, _, guide, params, x = trained
        samples = b.predictive(model, b.pc.discretize(guide), params, 5, x, return_sites=SEEN)
        assert _is_hard_binary(samples["z"]) and _is_one_hot(samples["c"])
        np.testing.assert_array_equal(samples["z_seen"], samples["z"])
        np.testing.assert_array_equal(samples["c_seen"], samples["c"])

    def test_predictive_of_the_relaxed_model_with_the_discretized_guide_feeds_hard_values(
        self, b, trained
    ):
        _, relaxed, guide, params, x = trained
        samples = b.predictive(relaxed, b.pc.discretize(guide), params, 5, x, return_sites=SEEN)
        assert _is_hard_binary(samples["z_seen"]) and _is_one_hot(samples["c_seen"])
        np.testing.assert_array_equal(samples["z_seen"], samples["z"])
        np.testing.assert_array_equal(samples["c_seen"], samples["c"])

    # --- time series ----------------------------------------------------------------------

    HMM = {"locs": [-2.0, 2.0], "trans": [[0.9, 0.1], [0.15, 0.85]], "init": [0.5, 0.5]}

    def _hmm_data(self, length=30, seed=0):
        rng = np.random.default_rng(seed)
        z = [rng.choice(2, p=self.HMM["init"])]
        for _ in range(length - 1):
            z.append(rng.choice(2, p=self.HMM["trans"][z[-1]]))
        return np.array(self.HMM["locs"])[z] + rng.standard_normal(length)

    def test_every_time_series_form_of_a_hmm_is_relaxed(self, b):
        ys = self._hmm_data(length=5)
        for form in b.HMM_FORMS:
            trace = b.trace(b.pc.relax(b.hmm(form, **self.HMM), temperature=0.3), b.array(ys))
            hidden = b.latent_sites(trace)
            assert hidden and all(type(_base(s["fn"])) is b.pc.ExpConcrete for s in hidden.values())
            states = b.numpy(b.hidden_states({k: s["value"] for k, s in hidden.items()}, 5))
            np.testing.assert_allclose(logsumexp(states, -1), 0.0, atol=1e-5)

    @pytest.mark.slow
    def test_a_relaxed_hmm_recovers_the_hidden_states_and_its_bound_in_every_form(self, b):
        """AutoRelaxed on each form: the learned per-step probabilities pick the exact
        smoothing posterior's most probable state (forward-backward, float64) at 90% of
        the steps at least, and the discrete bound with 2000 particles is log p(y) within
        0.4 nats (measured: standard deviation 0.09 over seeds, mean 0.01 from log p(y))."""
        ys = self._hmm_data(length=20)
        log_py, exact = R.hmm_posterior(ys, **self.HMM)
        for form in b.HMM_FORMS:
            model = b.hmm(form, **self.HMM)
            relaxed = b.pc.relax(model)
            guide = b.pc.AutoRelaxed(relaxed)
            params, losses = b.fit(relaxed, guide, b.array(ys), steps=300, lr=0.1)
            assert np.isfinite(losses).all(), form
            probs = b.hidden_states(b.probs(guide, params, b.array(ys)), len(ys))
            agreement = np.mean(probs.argmax(-1) == exact.argmax(-1))
            assert agreement >= 0.9, (form, agreement)
            bound = b.discrete_bound(model, guide, params, b.array(ys), num_samples=2000)
            assert abs(bound - log_py) < 0.4, (form, bound, log_py)

    # --- the discrete bound ----------------------------------------------------------------

    def test_discrete_bound_rejects_a_subsampled_plate_naming_it(self, b):
        def model(x):
            with b.plate("data", 10, subsample_size=4):
                b.sample("z", b.Bernoulli(0.5))

        def guide(x):
            with b.plate("data", 10, subsample_size=4):
                b.sample("z", b.pc.LogitBinaryConcrete(0.5, logits=b.array(np.zeros(4))))

        with pytest.raises(ValueError, match=r"'data'.*subsample"):
            b.discrete_bound(model, guide, {}, b.array(0.0), num_samples=3)

    def test_discrete_bound_of_a_model_that_does_not_vectorise_over_particles(self, b):
        """``y ~ N(X (gamma * w), 1)`` with ``gamma_j ~ Bernoulli(0.3)`` (8 configurations,
        enumerated in float64): the matrix product does not broadcast over a particle
        dimension.  A guide with all its mass on one ``gamma`` bounds at exactly
        ``log p(y, gamma)`` for every K; a uniform guide's bound with 1000 particles is
        ``log p(y)`` within 4 standard errors of the log mean weight (delta method)."""
        rng = np.random.default_rng(0)
        X, w = rng.standard_normal((6, 3)), np.array([1.5, -2.0, 1.0])
        y = X @ (np.array([1.0, 0.0, 1.0]) * w) + 0.5 * rng.standard_normal(6)
        gammas, log_joint = R.subset_regression_log_joint(X, y, w, 0.3, 1.0)
        X_, w_, y_ = b.array(X), b.array(w), b.array(y)

        def model(y):
            with b.plate("features", 3):
                gamma = b.sample("gamma", b.Bernoulli(0.3))
            b.sample("y", b.Normal(X_ @ (gamma * w_), 1.0).to_event(1), obs=y)

        def guide_of(logits):
            def guide(y):
                with b.plate("features", 3):
                    b.sample("gamma", b.pc.LogitBinaryConcrete(0.5, logits=b.array(logits)))

            return guide

        point = guide_of([1e4, -1e4, 1e4])
        (expected,) = log_joint[(gammas == [1, 0, 1]).all(1)]
        for k in (1, 7):
            bound = b.discrete_bound(model, point, {}, y_, num_samples=k)
            assert bound == pytest.approx(expected, abs=1e-3)
        bound = b.discrete_bound(model, guide_of(np.zeros(3)), {}, y_, num_samples=1000)
        posterior = np.exp(log_joint - logsumexp(log_joint))
        se = math.sqrt(len(posterior) * (posterior**2).sum() - 1) / math.sqrt(1000)
        assert abs(bound - logsumexp(log_joint)) < 4 * se, (bound, se)

    # --- sites that cannot be relaxed -------------------------------------------------------

    def test_autorelaxed_names_an_unrelaxable_site_and_says_what_to_do(self, b):
        def model():
            b.sample("n", b.Poisson(3.0))
            b.sample("z", b.Bernoulli(0.5))

        with pytest.raises(ValueError, match="'n'") as info:
            b.trace(b.pc.AutoRelaxed(b.pc.relax(model)))
        message = str(info.value)
        for words in ("Poisson", "Bernoulli and OneHotCategorical", "enumerate", "sites="):
            assert words in message, words

    # --- summaries ---------------------------------------------------------------------------

    def test_quantiles_of_a_relaxed_guide_raise_not_implemented_saying_why(self, b, trained):
        _, _, guide, params, x = trained
        with pytest.raises(NotImplementedError, match="probs"):
            b.quantiles(guide, params, [0.5], x)

    # --- pickling ----------------------------------------------------------------------------

    def test_relaxed_model_discretized_guide_and_schedules_pickle_and_round_trip(self, b):
        relaxed = b.pc.relax(two_site_model(b), b.pc.exponential_decay(1.0, 0.1, 0.3), ["z", "c"])
        x = b.array(np.zeros(4))
        copy = b.pickle_round_trip(relaxed)
        before, after = b.trace(relaxed, x, relax_step=3), b.trace(copy, x, relax_step=3)
        for name in ("z", "c", "z_seen"):
            np.testing.assert_array_equal(
                b.numpy(after[name]["value"]), b.numpy(before[name]["value"])
            )
        assert _site_temperature(b, after["z"]) == pytest.approx(math.exp(-0.3), 1e-6)
        guide = b.pc.discretize(b.pc.AutoRelaxed(relaxed))
        b.trace(guide, x)  # Pyro's autoguides pickle without their model: run them first
        assert type(_base(b.trace(b.pickle_round_trip(guide), x)["c"]["fn"])).__name__ == (
            "OneHotCategorical"
        )

    def test_a_trained_guide_and_its_parameters_pickle_and_round_trip(self, b, trained):
        _, _, guide, params, x = trained
        expected = b.probs(guide, params, x)
        guide_copy, params_copy = b.pickle_round_trip((guide, params))
        b.load_params(params_copy)
        probs = b.probs(guide_copy, params_copy, x)
        assert probs.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(probs[name], expected[name])
