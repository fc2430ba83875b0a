"""The relaxation workflow, stated once for every backend.

Not collected by itself: ``tests/<backend>/test_relax_suite.py`` subclasses
:class:`RelaxSuite` and provides a ``b`` fixture (``tests/relax_backends.py``).  Models
and guides are written once against ``b``.  Expectations are closed forms or float64
enumerations of the discrete model (``tests/references.py``), never the code under test
run another way.  Sections follow the workflow: what relax does to a site, handlers
around and inside it, select, discretize, AutoRelaxed, temperatures, predictions, time
series, the discrete bound, unrelaxable sites, summaries, pickling, end to end.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, log_softmax, logit, logsumexp, softmax

from . import references as R
from .relax_backends import backend

TABLE = np.array([-1.0, 0.0, 2.0])
C_PROBS = [0.2, 0.3, 0.5]
P_Z = 0.3
LOGITS_3 = np.array([0.4, -1.2, 0.9])
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


def two_sites(b):
    """``z ~ Bernoulli(P_Z)`` and ``c ~ OneHotCategorical(C_PROBS)``, no plate, no data; the
    model returns what its code receives."""

    def model():
        return b.sample("z", b.Bernoulli(P_Z)), b.sample("c", b.OneHotCategorical(b.array(C_PROBS)))

    return model


Y_Z, Y_C = -0.7, np.log([0.1, 0.6, 0.3])  # log-space values of two_sites's relaxed nodes


def two_sites_log_density(y_z, y_c, temperature=0.5):
    """log p of ``relax(two_sites)``'s nodes at log-space values (float64 references)."""
    return float(
        R.logit_binary_concrete_log_density(y_z, logit(P_Z), temperature)
        + R.exp_concrete_log_density(y_c, np.log(C_PROBS), temperature)
    )


def _site_temperature(b, site):
    return float(b.numpy(_base(site["fn"]).temperature).ravel()[0])


def _base(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _is_relaxed(b, site):
    return type(_base(site["fn"])) in (b.pc.LogitBinaryConcrete, b.pc.ExpConcrete)


def _is_hard_binary(x):
    return bool(np.all((x == 0) | (x == 1)))


def _is_one_hot(x):
    return _is_hard_binary(x) and bool(np.all(x.sum(-1) == 1))


class RelaxSuite:
    # --- what relax does to a site -----------------------------------------------------------

    def test_relax_records_log_space_node_under_original_name_and_model_receives_sigmoid_exp(
        self, b
    ):
        (z, c), trace = b.run(b.pc.relax(two_sites(b), temperature=0.5), seed=1)
        assert list(b.latent_sites(trace)) == ["z", "c"]
        site_z, site_c = trace["z"], trace["c"]
        assert type(site_z["fn"]) is b.pc.LogitBinaryConcrete
        assert type(site_c["fn"]) is b.pc.ExpConcrete
        # the recorded node carries the prior temperature and the discrete site's logits
        assert _site_temperature(b, site_z) == _site_temperature(b, site_c) == 0.5
        assert float(b.numpy(site_z["fn"].logits)) == pytest.approx(logit(P_Z), abs=1e-6)
        np.testing.assert_allclose(softmax(b.numpy(site_c["fn"].logits)), C_PROBS, atol=1e-6)
        # the recorded values are in log space; the model's code received sigmoid / exp
        y_z, y_c = b.numpy(site_z["value"]), b.numpy(site_c["value"])
        assert y_z.shape == () and y_c.shape == (3,)
        assert logsumexp(y_c) == pytest.approx(0.0, abs=1e-6)
        np.testing.assert_allclose(b.numpy(z), expit(y_z), rtol=1e-6)
        np.testing.assert_allclose(b.numpy(c), np.exp(y_c), rtol=1e-5)

    def test_relaxed_trace_scores_the_log_space_densities_once_with_no_jacobian(self, b):
        """log p of the relaxed trace = the logistic / normalised ExpConcrete density of
        the recorded log-space values (float64 references) + the observed term at the
        values the model received."""

        def model():
            z = b.sample("z", b.Bernoulli(P_Z))
            c = b.sample("c", b.OneHotCategorical(b.array(C_PROBS)))
            b.sample("x", b.Normal(z + b.pc.select(b.array(TABLE), c), 1.0), obs=b.array(0.4))

        log_joint, trace = b.log_joint(b.pc.relax(model, temperature=0.4), seed=2)
        y_z, y_c = b.numpy(trace["z"]["value"]), b.numpy(trace["c"]["value"])
        expected = (
            R.logit_binary_concrete_log_density(y_z, logit(P_Z), 0.4)
            + R.exp_concrete_log_density(y_c, np.log(C_PROBS), 0.4)
            + stats.norm.logpdf(0.4, loc=expit(y_z) + np.exp(y_c) @ TABLE, scale=1.0)
        )
        assert log_joint == pytest.approx(float(expected), abs=1e-4)

    def test_relax_keeps_event_dims_expansion_and_masks_of_the_discrete_site(self, b):
        mask = np.array([True, False, True])

        def model():
            b.sample("a", b.Bernoulli(0.5).expand([3]).to_event(1))
            with b.plate("p", 3):
                b.sample("m", b.Bernoulli(0.5).mask(b.mask(mask)))

        trace = b.trace(b.pc.relax(model))
        fn_a, fn_m = trace["a"]["fn"], trace["m"]["fn"]
        assert (tuple(fn_a.batch_shape), tuple(fn_a.event_shape)) == ((), (3,))
        assert type(_base(fn_a)) is type(_base(fn_m)) is b.pc.LogitBinaryConcrete
        log_p = b.numpy(fn_m.log_prob(trace["m"]["value"]))
        assert np.all(log_p[~mask] == 0) and np.all(log_p[mask] != 0)

    def test_relax_leaves_observed_and_continuous_sites_untouched(self, b):
        def model():
            b.sample("z", b.Bernoulli(0.3))
            o = b.sample("o", b.Bernoulli(0.6), obs=b.array(1.0))
            k = b.sample("k", b.OneHotCategorical(b.array(C_PROBS)), obs=b.array([0, 1, 0]))
            n = b.sample("n", b.Categorical(b.array(C_PROBS)), obs=b.index(2))
            w = b.sample("w", b.Normal(0.0, 1.0))
            return o, k, n, w

        (o, k, n, w), trace = b.run(b.pc.relax(model))
        assert type(trace["z"]["fn"]) is b.pc.LogitBinaryConcrete
        for name in ("o", "k", "n"):
            assert trace[name]["is_observed"] and not _is_relaxed(b, trace[name]), name
        assert float(o) == 1.0 and b.numpy(k).tolist() == [0.0, 1.0, 0.0] and int(n) == 2
        assert type(trace["w"]["fn"]) is b.Normal and float(w) == float(trace["w"]["value"])

    def test_relax_vectorizes_over_plates_elementwise(self, b):
        probs = np.array([0.1, 0.5, 0.9, 0.3, 0.7])

        def model():
            with b.plate("data", 5):
                return b.sample("z", b.Bernoulli(b.array(probs)))

        z, trace = b.run(b.pc.relax(model, temperature=0.6))
        site = trace["z"]
        assert tuple(site["fn"].batch_shape) == (5,) and tuple(site["value"].shape) == (5,)
        np.testing.assert_allclose(b.numpy(site["fn"].logits), logit(probs), rtol=1e-5)
        np.testing.assert_allclose(b.numpy(z), expit(b.numpy(site["value"])), rtol=1e-6)
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]

    def test_relax_under_nested_plates_gives_batched_log_space_sites(self, b):
        def model():
            with b.plate("outer", 2, dim=-2), b.plate("inner", 3, dim=-1):
                return b.sample("z", b.Bernoulli(0.5)), b.sample("c", b.OneHotCategorical(C3))

        C3 = b.array(np.ones(4) / 4)
        (z, c), trace = b.run(b.pc.relax(model))
        sz, sc = trace["z"], trace["c"]
        assert type(_base(sz["fn"])) is b.pc.LogitBinaryConcrete
        assert type(_base(sc["fn"])) is b.pc.ExpConcrete
        assert tuple(sz["value"].shape) == (2, 3) and tuple(sc["fn"].event_shape) == (4,)
        assert {f.name: f.dim for f in sc["cond_indep_stack"]} == {"outer": -2, "inner": -1}
        np.testing.assert_allclose(b.numpy(c).sum(-1), np.ones((2, 3)), atol=1e-6)
        np.testing.assert_allclose(b.numpy(z), expit(b.numpy(sz["value"])), rtol=1e-6)
        log_p = b.numpy(sc["fn"].log_prob(sc["value"]))
        assert log_p.shape == (2, 3) and np.isfinite(log_p).all()

    def test_relaxed_model_under_an_enclosing_plate_receives_sigmoid_and_exp_values(self, b):
        """A vectorized plate around the relaxed model (particles) changes nothing about
        what the model's code receives."""

        def model():
            with b.plate("data", 3):
                return b.sample("z", b.Bernoulli(0.5)), b.sample("c", b.OneHotCategorical(C4))

        def particles():
            with b.plate("particles", 2, dim=-2):
                return b.pc.relax(model)()

        C4 = b.array(np.ones(4) / 4)
        (z, c), trace = b.run(particles)
        y_z, y_c = b.numpy(trace["z"]["value"]), b.numpy(trace["c"]["value"])
        assert y_z.shape == (2, 3) and y_c.shape == (2, 3, 4)
        np.testing.assert_allclose(b.numpy(z), expit(y_z), rtol=1e-6)
        np.testing.assert_allclose(b.numpy(c), np.exp(y_c), rtol=1e-5)

    def test_relax_under_a_subsampled_plate_relaxes_the_subsampled_elements_only(self, b):
        probs = np.linspace(0.05, 0.95, 100)

        def model():
            with b.plate("data", 100, subsample_size=10) as ind:
                return ind, b.sample("z", b.Bernoulli(b.array(probs)[ind]))

        (ind, z), trace = b.run(b.pc.relax(model))
        site, ind = trace["z"], b.numpy(ind).astype(int)
        assert ind.shape == (10,) and len(set(ind.tolist())) == 10
        assert type(site["fn"]) is b.pc.LogitBinaryConcrete and tuple(z.shape) == (10,)
        np.testing.assert_allclose(
            b.numpy(site["fn"].logits), logit(probs[ind]), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(b.numpy(z), expit(b.numpy(site["value"])), rtol=1e-6)

    def test_sites_argument_restricts_the_relaxation_and_leaves_the_others_discrete(self, b):
        def model():
            b.sample("k", b.Categorical(b.array(C_PROBS)))
            b.sample("z", b.Bernoulli(0.5))
            return b.sample("c", b.OneHotCategorical(b.array(C_PROBS)))

        c, trace = b.run(b.pc.relax(model, sites=["z"]))
        assert type(trace["z"]["fn"]) is b.pc.LogitBinaryConcrete
        assert not _is_relaxed(b, trace["k"]) and not _is_relaxed(b, trace["c"])
        assert sorted(b.numpy(c).tolist()) == [0.0, 0.0, 1.0]

    @pytest.mark.parametrize("family", ["Normal", "Poisson", "Categorical"])
    def test_naming_a_non_relaxable_site_in_sites_raises_value_error(self, b, family):
        args = {"Normal": (0.0, 1.0), "Poisson": (3.0,), "Categorical": (b.array(C_PROBS),)}

        def model():
            b.sample("w", getattr(b, family)(*args[family]))

        with pytest.raises(ValueError, match="'w'"):
            b.run(b.pc.relax(model, sites=["w"]))

    def test_latent_categorical_raises_value_error_pointing_to_onehot_and_select(self, b):
        def model():
            b.sample("k", b.Categorical(b.array(C_PROBS)))

        with pytest.raises(ValueError, match="'k'") as info:
            b.run(b.pc.relax(model))
        assert "OneHotCategorical" in str(info.value) and "select" in str(info.value)

    # --- handlers around and inside relax ---------------------------------------------------

    def test_condition_inside_relax_observes_the_original_discrete_site(self, b):
        conditioned = b.condition(two_sites(b), data={"z": b.array(1.0)})
        (z, _), trace = b.run(b.pc.relax(conditioned))
        site = trace["z"]
        assert site["is_observed"] and type(site["fn"]) is type(b.Bernoulli(P_Z))
        assert float(site["fn"].probs) == pytest.approx(P_Z)
        assert float(z) == 1.0 and float(site["value"]) == 1.0
        assert type(trace["c"]["fn"]) is b.pc.ExpConcrete

    def test_condition_outside_relax_takes_log_space_values_and_model_receives_their_image(self, b):
        data = {"z": b.array(Y_Z), "c": b.array(Y_C)}
        model = b.condition(b.pc.relax(two_sites(b)), data=data)
        (z, c), trace = b.run(model)
        site_z, site_c = trace["z"], trace["c"]
        assert site_z["is_observed"] and site_c["is_observed"]
        assert type(site_z["fn"]) is b.pc.LogitBinaryConcrete
        assert type(site_c["fn"]) is b.pc.ExpConcrete
        np.testing.assert_array_equal(b.numpy(site_z["value"]), np.float32(Y_Z))
        np.testing.assert_array_equal(b.numpy(site_c["value"]), np.float32(Y_C))
        assert float(z) == pytest.approx(float(expit(Y_Z)), rel=1e-6)
        np.testing.assert_allclose(b.numpy(c), np.exp(Y_C), rtol=1e-6)
        # the conditioned values are scored by the log-space densities
        log_joint, _ = b.log_joint(model)
        assert log_joint == pytest.approx(two_sites_log_density(Y_Z, Y_C), abs=1e-5)

    def test_substitute_outside_relax_substitutes_the_params_of_the_relaxed_sites(self, b):
        def model():
            return b.sample("z", b.Bernoulli(logits=b.param("logit", b.array(0.0))))

        relaxed = b.pc.relax(model, temperature=0.3)
        z, trace = b.run(b.substitute(relaxed, data={"logit": b.array(2.5)}))
        site = trace["z"]
        assert type(site["fn"]) is b.pc.LogitBinaryConcrete
        assert float(site["fn"].logits) == pytest.approx(2.5)
        assert _site_temperature(b, site) == pytest.approx(0.3)
        assert float(z) == pytest.approx(float(expit(b.numpy(site["value"]))), rel=1e-6)

    def test_replay_of_a_relaxed_trace_reproduces_values_and_what_the_model_receives(self, b):
        relaxed = b.pc.relax(two_sites(b))
        (z0, c0), trace0 = b.run(relaxed, seed=3)
        # different noise: the replayed values must come from the trace
        (z1, c1), trace1 = b.run(b.replay(relaxed, trace0), seed=4)
        for name in ("z", "c"):
            value0, value1 = b.numpy(trace0[name]["value"]), b.numpy(trace1[name]["value"])
            np.testing.assert_array_equal(value1, value0)
            assert not trace1[name]["is_observed"]
        np.testing.assert_array_equal(b.numpy(z1), b.numpy(z0))
        np.testing.assert_array_equal(b.numpy(c1), b.numpy(c0))

    def test_replay_of_a_hand_written_guide_sampling_log_space_families_feeds_the_model(self, b):
        def guide():
            b.sample("z", b.pc.LogitBinaryConcrete(0.7, logits=b.array(1.5)))
            b.sample("c", b.pc.ExpConcrete(0.7, logits=b.array([0.0, 1.0, -1.0])))

        guide_trace = b.trace(guide, seed=5)
        (z, c), trace = b.run(b.replay(b.pc.relax(two_sites(b)), guide_trace), seed=6)
        y_z, y_c = b.numpy(guide_trace["z"]["value"]), b.numpy(guide_trace["c"]["value"])
        np.testing.assert_allclose(b.numpy(z), expit(y_z), rtol=1e-6)
        np.testing.assert_allclose(b.numpy(c), np.exp(y_c), rtol=1e-6)
        assert type(trace["z"]["fn"]) is b.pc.LogitBinaryConcrete
        assert type(trace["c"]["fn"]) is b.pc.ExpConcrete

    def test_vectorized_particles_in_trace_elbo_feed_the_model_relaxed_values(self, b):
        """Four particles vectorised as the backend's ``Trace_ELBO`` does (Pyro: a plate;
        NumPyro: ``vmap`` under ``jit``): each particle's model receives sigmoid values in
        (0, 1)."""
        received = []

        def model():
            with b.plate("data", 3):
                z = b.sample("z", b.Bernoulli(0.5))
                b.record(received, z)
                b.sample("x", b.Normal(z, 1.0), obs=b.array(np.zeros(3)))

        def guide():
            with b.plate("data", 3):
                b.sample("z", b.pc.LogitBinaryConcrete(0.5, logits=b.array([-1.0, 0.0, 1.0])))

        relaxed = b.pc.relax(model)
        loss = b.particle_loss(relaxed, guide, {}, num_particles=4, max_plate_nesting=1)
        assert math.isfinite(loss)
        values = np.concatenate([np.reshape(v, (-1, 3)) for v in received])
        assert values.shape == (4, 3)
        assert np.all((values > 0) & (values < 1)), values

    # --- select -------------------------------------------------------------------------------

    def test_select_reads_the_same_entry_from_an_index_and_a_one_hot(self, b):
        rng = np.random.default_rng(0)
        table, index = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
        expected = table[np.arange(4), index]
        for z in (b.index(index), b.array(np.eye(5)[index])):
            np.testing.assert_allclose(b.numpy(b.pc.select(b.array(table), z)), expected, 1e-6)
        assert float(b.pc.select(b.array([7.0, 8.0, 9.0]), b.index(1))) == 8.0

    def test_select_of_a_relaxed_one_hot_is_the_convex_combination_and_broadcasts(self, b):
        rng = np.random.default_rng(1)
        table, z = rng.standard_normal((2, 1, 3)), rng.dirichlet(np.ones(3), size=4)
        out = b.numpy(b.pc.select(b.array(table), b.array(z)))
        np.testing.assert_allclose(out, np.einsum("ak,bk->ab", table[:, 0], z), rtol=1e-5)
        index = b.index([[0], [2]])  # (2, 1) indices against a (4, 3) table
        out = b.numpy(b.pc.select(b.array(np.arange(12.0).reshape(4, 3)), index))
        assert out.tolist() == [[0.0, 3.0, 6.0, 9.0], [2.0, 5.0, 8.0, 11.0]]

    def test_select_with_a_relaxed_one_hot_is_the_convex_combination_and_differentiable(self, b):
        table, z = np.array([1.0, -2.0, 5.0]), np.array([0.2, 0.5, 0.3])
        out = float(b.pc.select(b.array(table), b.array(z)))
        assert out == pytest.approx(table @ z, abs=1e-6)
        grad_table, grad_z = b.grad(b.pc.select, table, z)
        np.testing.assert_allclose(grad_table, z, rtol=1e-6)
        np.testing.assert_allclose(grad_z, table, rtol=1e-6)

    # --- discretize ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "family",
        [
            "ExpConcrete",
            "Concrete",
            "ConcreteStraightThrough",
            "LogitBinaryConcrete",
            "BinaryConcrete",
            "HardConcrete",
            "BinaryConcreteStraightThrough",
        ],
    )
    def test_discretize_replaces_each_concrete_family_by_its_zero_temperature_limit(
        self, b, family
    ):
        categorical = "Binary" not in family and "Hard" not in family
        logits = np.array([[0.4, -1.2, 0.9], [0.0, 2.0, -3.0]]) if categorical else LOGITS_3

        def model():
            with b.plate("p", len(logits)):
                return b.sample("s", getattr(b.pc, family)(0.4, logits=b.array(logits)))

        value, trace = b.run(b.pc.discretize(model))
        fn, value = _base(trace["s"]["fn"]), b.numpy(value)
        assert type(fn).__name__ == ("OneHotCategorical" if categorical else b.DISCRETE_BINARY)
        expected = softmax(logits, -1) if categorical else expit(logits)
        np.testing.assert_allclose(b.numpy(fn.probs), expected, rtol=1e-5)
        assert value.shape == logits.shape and _is_hard_binary(value)
        assert not categorical or value.sum(-1).tolist() == [1, 1]

    def test_discretize_keeps_wrappers_and_leaves_other_sites_alone(self, b):
        def guide():
            b.sample("a", b.pc.LogitBinaryConcrete(0.5, logits=b.array(np.zeros(4))).to_event(1))
            b.sample("w", b.Normal(0.0, 1.0))
            b.sample("k", b.Categorical(b.array(C_PROBS)))

        trace = b.trace(b.pc.discretize(guide))
        assert tuple(trace["a"]["fn"].event_shape) == (4,)
        assert type(_base(trace["a"]["fn"])).__name__ == b.DISCRETE_BINARY
        assert _is_hard_binary(b.numpy(trace["a"]["value"]))
        assert type(trace["w"]["fn"]) is b.Normal and not _is_relaxed(b, trace["k"])

    def test_discretize_outside_relax_gives_back_the_discrete_model(self, b):
        (z, c), trace = b.run(b.pc.discretize(b.pc.relax(two_sites(b))))
        assert not _is_relaxed(b, trace["z"]) and not _is_relaxed(b, trace["c"])
        assert float(z) in (0.0, 1.0) and sorted(b.numpy(c).tolist()) == [0.0, 0.0, 1.0]

    def test_discretize_used_as_a_context_manager(self, b):
        def guide():
            with b.pc.discretize():
                return b.sample("y", b.pc.ExpConcrete(0.1, logits=b.array(np.zeros(5))))

        value, trace = b.run(guide)
        assert type(trace["y"]["fn"]) is b.OneHotCategorical
        assert sorted(b.numpy(trace["y"]["value"]).tolist()) == [0.0] * 4 + [1.0]
        np.testing.assert_array_equal(b.numpy(value), b.numpy(trace["y"]["value"]))

    # --- AutoRelaxed -------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def auto(cls, b):
        """``(relaxed auto_model at prior temperature 0.5, AutoRelaxed with its defaults, its
        initial parameters)``, built once, never mutated by the tests."""
        relaxed = b.pc.relax(auto_model(b), temperature=0.5)
        guide = b.pc.AutoRelaxed(relaxed)
        return relaxed, guide, b.init_params(guide)

    def test_autorelaxed_probs_have_the_discrete_shapes_and_values(self, b, auto):
        _, guide, params = auto
        probs, log_alpha = b.probs(guide, params), b.log_alpha(params)
        assert {k: v.shape for k, v in probs.items()} == AUTO_SHAPES
        for name, family in AUTO_FAMILIES.items():
            expected = (
                expit(log_alpha[name]) if family == "binary" else softmax(log_alpha[name], -1)
            )
            np.testing.assert_allclose(probs[name], expected, rtol=1e-5)

    @pytest.mark.slow
    def test_autorelaxed_learns_a_mixture_whose_prior_rules_out_categories_per_point(self, b):
        """``-inf`` prior logits, different for each point: the guide keeps those
        categories impossible (exactly zero probability, finite ELBO at every step) and,
        where one category is ruled out, learns the exact posterior over the other two (to
        the relaxation's bias at temperature 0.5 and the last step's noise)."""
        mask = np.array([[0, 0, 0], [0, -np.inf, 0], [-np.inf, 0, 0], [0, 0, -np.inf]])
        x = np.array([0.5, 0.5, 1.0, 0.3])

        def model(x):
            with b.plate("data", 4):
                c = b.sample("c", b.OneHotCategorical(logits=b.array(mask)))
                b.sample("x", b.Normal(b.pc.select(b.array(TABLE), c), 1.0), obs=x)

        relaxed = b.pc.relax(model, temperature=0.5)
        guide = b.pc.AutoRelaxed(relaxed)
        params, losses = b.fit(relaxed, guide, b.array(x), steps=1500, lr=0.05)
        probs = b.probs(guide, params, b.array(x))["c"]
        exact = softmax(mask - 0.5 * (x[:, None] - TABLE) ** 2, -1)
        assert np.isfinite(losses).all()
        np.testing.assert_array_equal(probs[np.isinf(mask)], 0.0)
        np.testing.assert_allclose(probs[1:], exact[1:], atol=0.12)

    def test_autorelaxed_guide_samples_the_relaxed_families_with_its_temperature(self, b, auto):
        relaxed, guide, _ = auto
        trace = b.trace(guide)
        for name, family in AUTO_FAMILIES.items():
            expected = b.pc.LogitBinaryConcrete if family == "binary" else b.pc.ExpConcrete
            assert type(_base(trace[name]["fn"])) is expected, name
            assert _site_temperature(b, trace[name]) == pytest.approx(2 / 3)
        assert tuple(trace["vector"]["fn"].event_shape) == (2,)
        model_trace = b.trace(b.replay(relaxed, trace))
        for name in AUTO_FAMILIES:
            assert model_trace[name]["value"].shape == trace[name]["value"].shape

    def test_autorelaxed_median_is_log_alpha_over_temperature_in_log_space(self, b, auto):
        _, guide, params = auto
        median, log_alpha = b.median(guide, params), b.log_alpha(params)
        np.testing.assert_allclose(median["local"], log_alpha["local"] / (2 / 3), rtol=1e-5)
        expected = log_softmax(log_alpha["cat"] / (2 / 3), -1)
        np.testing.assert_allclose(median["cat"], expected, rtol=1e-5, atol=1e-6)
        assert "w" in median

    def test_autorelaxed_median_on_a_model_whose_latent_sites_are_all_discrete(self, b):
        """No continuous latent site leaves AutoRelaxed's continuous part with nothing to
        describe; the median is then the relaxed sites' alone (NumPyro's empty
        ``AutoNormal`` raised ``IndexError`` here)."""
        guide = b.pc.AutoRelaxed(b.pc.relax(discrete_only_model(b), temperature=0.5))
        params = b.init_params(guide)
        median, log_alpha = b.median(guide, params), b.log_alpha(params)
        assert set(median) == {"z", "c"}
        np.testing.assert_allclose(median["z"], log_alpha["z"] / (2 / 3), rtol=1e-5)
        expected = log_softmax(log_alpha["c"] / (2 / 3), -1)
        np.testing.assert_allclose(median["c"], expected, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("init_scale", [None, 0.5])
    def test_autorelaxed_initialises_log_alpha_from_normal_zero_init_scale(
        self, b, auto, init_scale
    ):
        """``None``: the default, ``Normal(0, 0.01)``."""
        relaxed, _, params = auto
        if init_scale is not None:
            params = b.init_params(b.pc.AutoRelaxed(relaxed, init_scale=init_scale), seed=8)
        log_alpha = b.log_alpha(params)
        assert {k: v.shape for k, v in log_alpha.items()} == AUTO_SHAPES
        scale = 0.01 if init_scale is None else init_scale
        for values in (log_alpha["local"], log_alpha["local_cat"].ravel()):
            assert stats.kstest(values, stats.norm(0.0, scale).cdf).pvalue > 1e-3

    def test_autorelaxed_rejects_a_non_positive_init_scale(self, b):
        with pytest.raises(ValueError, match="init_scale"):
            b.pc.AutoRelaxed(b.pc.relax(auto_model(b)), init_scale=0.0)

    @pytest.mark.filterwarnings("ignore:Some algorithms will automatically enumerate")
    @pytest.mark.parametrize("guide", ["AutoRelaxed", "AutoRelaxedDiscrete"])
    def test_relaxed_autoguides_reject_unrelaxed_discrete_sites_with_a_pointer_to_relax(
        self, b, guide
    ):
        def model():
            b.sample("z", b.Bernoulli(0.5))

        with pytest.raises(ValueError, match=r"'z'.*relax"):
            b.trace(getattr(b.pc, guide)(model))

    @pytest.fixture(scope="class")
    @classmethod
    def subsampled(cls, b):
        """``(relaxed subsampled_model, AutoRelaxed of it)``, the guide's prototype built
        once."""
        relaxed = b.pc.relax(subsampled_model(b))
        guide = b.pc.AutoRelaxed(relaxed)
        b.trace(guide, b.array(SUBSAMPLE_DATA))
        return relaxed, guide

    def test_autorelaxed_keeps_full_size_log_alpha_and_indexes_it_by_the_subsample(
        self, b, subsampled
    ):
        relaxed, guide = subsampled
        data = b.array(SUBSAMPLE_DATA)
        guide_trace = b.trace(guide, data, seed=1)
        log_alpha = b.log_alpha(b.param_values(guide_trace))["z"]
        assert log_alpha.shape == (100,)
        ind = b.numpy(guide_trace["data"]["value"]).astype(int)
        assert ind.shape == (10,) and len(set(ind.tolist())) == 10
        site = guide_trace["z"]
        assert tuple(site["value"].shape) == (10,)
        np.testing.assert_allclose(b.numpy(_base(site["fn"]).logits), log_alpha[ind], rtol=1e-6)
        # the model, replayed against the guide, sees the guide's subsample
        model_trace = b.trace(b.replay(relaxed, guide_trace), data, seed=2)
        np.testing.assert_array_equal(b.numpy(model_trace["data"]["value"]), ind)

    def test_an_svi_step_on_a_subsample_updates_only_the_subsampled_log_alpha(self, b, subsampled):
        relaxed, guide = subsampled
        data = b.array(SUBSAMPLE_DATA)
        before = b.log_alpha(b.init_params(guide, data))["z"]
        params, losses = b.fit(relaxed, guide, data, steps=1, lr=0.1)
        assert np.isfinite(losses).all()
        assert np.count_nonzero(b.log_alpha(params)["z"] != before) == 10

    def test_autorelaxed_composes_inside_an_autoguidelist_with_autodelta(self, b):
        relaxed = b.pc.relax(composed_model(b))
        guide = b.AutoGuideList(relaxed)
        guide.append(b.pc.AutoRelaxed(b.block(relaxed, hide=["mu"])))
        guide.append(b.AutoDelta(b.block(relaxed, expose=["mu"])))
        trace = b.trace(guide)
        assert type(_base(trace["z"]["fn"])) is b.pc.LogitBinaryConcrete
        assert type(_base(trace["c"]["fn"])) is b.pc.ExpConcrete
        assert tuple(trace["z"]["value"].shape) == (6,)
        assert tuple(trace["c"]["value"].shape) == (6, 3)
        # AutoRelaxed's continuous part: a Normal in the unconstrained space of "scale"
        scale_sites = [s for n, s in trace.items() if n.startswith("scale")]
        assert b.Normal in {type(_base(s["fn"])) for s in scale_sites if s["type"] == "sample"}
        assert type(_base(trace["mu"]["fn"])) is b.Delta
        probs = b.probs(guide[0], b.param_values(trace))
        assert probs["z"].shape == (6,) and probs["c"].shape == (6, 3)
        _, losses = b.fit(relaxed, guide, steps=3)
        assert np.isfinite(losses).all()

    def test_autorelaxed_discrete_alone_composes_with_autodelta(self, b):
        relaxed = b.pc.relax(composed_model(b))
        guide = b.AutoGuideList(relaxed)
        # NumPyro's idiom, which Pyro accepts: a part exposes the plates of its sites too
        guide.append(b.pc.AutoRelaxedDiscrete(b.block(relaxed, expose=["z", "c", "data"])))
        guide.append(b.AutoDelta(b.block(relaxed, hide=["z", "c"])))
        trace = b.trace(guide)
        assert type(_base(trace["z"]["fn"])) is b.pc.LogitBinaryConcrete
        assert type(_base(trace["c"]["fn"])) is b.pc.ExpConcrete
        assert tuple(trace["c"]["value"].shape) == (6, 3)
        assert type(_base(trace["mu"]["fn"])) is type(_base(trace["scale"]["fn"])) is b.Delta
        _, losses = b.fit(relaxed, guide, steps=3)
        assert np.isfinite(losses).all()

    @pytest.mark.slow
    def test_autorelaxed_in_an_autoguidelist_learns_assignments_and_the_delta_location(self, b):
        """x_i ~ Normal(mu z_i, 0.5): six points near 3, six near 0.  AutoDelta finds mu near
        the mean of the points near 3; the relaxed guide puts z = 1 on exactly those
        (measured at seed 0: at least 0.93 on the six, at most 0.06 off them, in both
        backends; seed 1 reaches 0.11 off them)."""
        rng = np.random.default_rng(0)
        x = np.concatenate([3.0 + 0.3 * rng.standard_normal(6), 0.3 * rng.standard_normal(6)])

        def model(x):
            mu = b.sample("mu", b.Normal(0.0, 10.0))
            with b.plate("data", 12):
                z = b.sample("z", b.Bernoulli(0.5))
                b.sample("x", b.Normal(mu * z, 0.5), obs=x)

        relaxed = b.pc.relax(model)
        guide = b.AutoGuideList(relaxed)
        guide.append(b.pc.AutoRelaxed(b.block(relaxed, hide=["mu"])))
        start = b.init_to_value(values={"mu": b.array(1.0)})
        guide.append(b.AutoDelta(b.block(relaxed, expose=["mu"]), init_loc_fn=start))
        params, losses = b.fit(relaxed, guide, b.array(x), steps=600, lr=0.05)
        assert np.isfinite(losses).all()
        mu = float(b.median(guide[1], params, b.array(x))["mu"])
        assert abs(mu - x[:6].mean()) < 0.3
        probs = b.probs(guide[0], params, b.array(x))["z"]
        assert np.all(probs[:6] > 0.9) and np.all(probs[6:] < 0.1), probs

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
            assert float(schedule(b.index(step))) == pytest.approx(expected, rel=1e-6)
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
        ``log p(y, gamma)``; a uniform guide's bound with 1000 particles is
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
        bound = b.discrete_bound(model, point, {}, y_, num_samples=1000)
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

    # --- the discrete bound against exact enumeration -------------------------------------

    def test_discrete_bound_uses_hard_samples_of_the_relaxed_guide(self, b):
        """With a guide that puts all its mass on one configuration, the bound is exactly
        log p(x, z*) whatever K: the relaxed sites are read at their zero-temperature limit."""

        def point_guide(x):
            b.sample("c", b.pc.ExpConcrete(0.5, logits=b.array([-1e4, -1e4, 0.0])))
            for name, point in zip(("z1", "z2", "z3"), (-1e4, 1e4, 1e4), strict=True):
                b.sample(name, b.pc.LogitBinaryConcrete(0.5, logits=b.array(point)))

        (expected,) = [r[2] for r in small_configurations() if r[:2] == (2, (0, 1, 1))]
        for k in (1, 30):
            bound = b.discrete_bound(
                small_bound_model(b), point_guide, {}, b.array(BOUND_DATA), num_samples=k
            )
            assert bound == pytest.approx(expected, abs=1e-3)

    def test_discrete_bound_with_the_exact_posterior_as_guide_is_log_evidence_for_every_k(self, b):
        """Local latents only: every site is in the data plate, so the bound is per element,
        log p(x) = sum_i logsumexp_k log p(x_i, z_i = k).  With the exact posterior as guide
        the importance weights are constant: every K gives log p(x), whether the particles
        are drawn at once or in passes of ``batch_size``."""
        log_joint = local_log_joint()
        log_px = logsumexp(log_joint, -1)
        guide = local_guide(b, log_joint - log_px[:, None])
        for k, batch_size in ((1, None), (30, None), (30, 15)):
            bound = b.discrete_bound(
                local_model(b),
                guide,
                {},
                b.array(LOCAL_X),
                num_samples=k,
                batch_size=batch_size,
            )
            assert bound == pytest.approx(log_px.sum(), abs=1e-3), (k, batch_size)

    @pytest.mark.slow
    def test_discrete_bound_per_element_of_an_enclosing_plate_with_a_uniform_guide(self, b):
        """Per-element bound with q uniform: K = 1 averages to sum_i mean_k log(3 p(x_i, k));
        K = 1000 averages to log p(x) up to the IWAE bias (under 0.01 nats per element)."""
        log_joint = local_log_joint()
        log_px = logsumexp(log_joint, -1).sum()
        model, guide, data = local_model(b), local_guide(b, np.zeros((5, 3))), b.array(LOCAL_X)
        exact_elbo = (log_joint.mean(-1) + np.log(3)).sum()
        estimates = _bound_estimates(b, model, guide, {}, data, 1, range(60))
        se = estimates.std(ddof=1) / math.sqrt(len(estimates))
        assert abs(estimates.mean() - exact_elbo) < 4 * se
        big = _bound_estimates(b, model, guide, {}, data, 1000, range(5))
        se = big.std(ddof=1) / math.sqrt(len(big))
        assert log_px - 0.05 - 4 * se < big.mean() < log_px + 4 * se

    @pytest.mark.slow
    def test_discrete_bound_of_an_untrained_guide_is_the_discrete_elbo_and_below_log_evidence(
        self, b
    ):
        """Three Bernoulli sites and a OneHotCategorical (24 configurations, enumerated in
        float64); the guide is AutoRelaxed at initialisation (q nearly uniform).  Measured:
        log p(x) = -6.81, exact discrete ELBO -21.9; K = 1000: -6.81 +- 0.03."""
        data, model = b.array(BOUND_DATA), small_bound_model(b)
        log_px = float(logsumexp([row[2] for row in small_configurations()]))
        guide = b.pc.AutoRelaxed(b.pc.relax(model))
        params = b.init_params(guide, data)
        exact_elbo = small_discrete_elbo(b.probs(guide, params, data))
        means = _check_bounds(b, model, guide, params, data, log_px, exact_elbo, "init")
        assert means[1000][0] > means[1][0] + 4 * means[1][1]
        assert log_px - means[1000][0] < 0.1, (log_px, means)

    @pytest.mark.slow
    def test_discrete_bound_below_log_evidence_before_and_after_training_and_tight_after(self, b):
        """Ten Bernoulli switches and a OneHotCategorical (4096 configurations, enumerated
        in float64): before and after relax + AutoRelaxed + Trace_ELBO training, the bounds
        are never above log p(x) beyond Monte Carlo error and increase with K; after
        training the K = 1000 bound is within 0.5 nats of log p(x).  Measured: log p(x) =
        -11.96; K = 1000 gives -16.5 before (gap 4.5), -11.97 after 1000 steps."""
        data, model = b.array(BIG_DATA), big_bound_model(b)
        log_joint, _ = big_log_joint()
        log_px = float(logsumexp(log_joint))
        relaxed = b.pc.relax(model, temperature=0.5)
        guide = b.pc.AutoRelaxed(relaxed)

        def check(params, stage):
            exact_elbo = big_discrete_elbo(b.probs(guide, params, data))
            means = _check_bounds(b, model, guide, params, data, log_px, exact_elbo, stage, True)
            return means, exact_elbo

        before, elbo_before = check(b.init_params(guide, data), "before training")
        assert before[1000][0] > before[1][0] + 4 * before[1][1]
        assert log_px - before[1000][0] > 1.0  # the untrained guide misses the posterior mode

        params, losses = b.fit(relaxed, guide, data, steps=1000, lr=0.05, lr_decay=0.998)
        assert np.isfinite(losses).all()
        after, elbo_after = check(params, "after training")
        assert elbo_after > elbo_before + 10
        assert log_px - after[1000][0] < 0.5, (log_px, after)

    # --- end to end: what training learns ---------------------------------------------------

    @pytest.mark.slow
    def test_relaxed_gmm_recovers_exact_posterior_assignments_and_locations(self, b):
        """Mixture of N(-5, 1), N(0, 1), N(5, 1), 600 points, locations ~ N(0, 10^2).  The
        learned assignment probabilities match the exact posterior at the learned locations
        (float64 closed form) to MAE < 0.05, and the locations match the discrete model's
        MAP (EM in float64) and the truth within 0.2.  PRIOR_T / POSTERIOR_T (0.2 / 0.5),
        1000 steps of clipped Adam, lr 0.05 decayed by 0.999 per step (measured MAE 0.022
        to 0.023 for seeds 0 to 3; 0.048 at the paper's temperatures)."""
        rng = np.random.default_rng(0)
        x = GMM_LOCS[rng.integers(0, 3, 600)] + rng.standard_normal(600)

        def model(data):
            locs = b.sample("locs", b.Normal(0.0, 10.0).expand([3]).to_event(1))
            with b.plate("data", len(data)):
                z = b.sample("z", b.OneHotCategorical(b.array(np.ones(3) / 3)))
                b.sample("x", b.Normal(b.pc.select(locs, z), 1.0), obs=data)

        relaxed = b.pc.relax(model, temperature=PRIOR_T)
        guide = b.pc.AutoRelaxed(relaxed, temperature=POSTERIOR_T)
        params, losses = b.fit(relaxed, guide, b.array(x), steps=1000, lr_decay=0.999)
        assert np.isfinite(losses).all()
        locs = b.median(guide, params, b.array(x))["locs"]
        order = np.argsort(locs)
        np.testing.assert_allclose(locs[order], R.mixture_map_locations(x), atol=0.2)
        np.testing.assert_allclose(locs[order], GMM_LOCS, atol=0.2)
        mae = np.abs(b.probs(guide, params, b.array(x))["z"] - R.mixture_posterior(x, locs))
        assert mae.mean() < 0.05, mae.mean()

    @pytest.mark.slow
    def test_amortized_logit_binary_concrete_guide_learns_the_known_posterior(self, b):
        """z_i ~ Bernoulli(1/2), x_i ~ Normal(2 z_i - 1, 1): p(z_i = 1 | x_i) = sigmoid(2 x_i).
        A hand-written guide with a 1-8-1 tanh MLP encoder on ``param`` weights samples the
        relaxed model's site ``z`` from LogitBinaryConcrete(POSTERIOR_T, encoder(x)) and
        trains with Trace_ELBO, 800 steps of clipped Adam (measured, seeds 0 to 2 in both
        backends: MAE 0.027 to 0.031 to the exact posterior; discrete ELBO gap 146 nats at
        initialisation, 3.2 to 4.1 after; at the paper's temperatures the MAE stalls at 0.08
        to 0.10)."""
        rng = np.random.default_rng(1)
        x = 2.0 * rng.integers(0, 2, 400) - 1.0 + rng.standard_normal(400)
        init = {}  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch.nn.Linear's initialisation
        for layer, (fan_in, fan_out) in enumerate(ENCODER_LAYERS):
            bound = fan_in**-0.5
            init[f"w{layer}"] = rng.uniform(-bound, bound, (fan_in, fan_out))
            init[f"b{layer}"] = rng.uniform(-bound, bound, fan_out)

        def encoder(w, x, tanh):
            return (tanh(x[:, None] @ w["w0"] + w["b0"]) @ w["w1"] + w["b1"])[:, 0]

        def model(x):
            with b.plate("data", len(x)):
                z = b.sample("z", b.Bernoulli(0.5))
                b.sample("x", b.Normal(2.0 * z - 1.0, 1.0), obs=x)

        def guide(x):
            w = {name: b.param(name, b.array(value)) for name, value in init.items()}
            with b.plate("data", len(x)):
                b.sample("z", b.pc.LogitBinaryConcrete(POSTERIOR_T, logits=encoder(w, x, b.tanh)))

        relaxed = b.pc.relax(model, temperature=PRIOR_T)
        params, losses = b.fit(relaxed, guide, b.array(x), steps=800, lr=0.02, lr_decay=0.999)
        assert np.isfinite(losses).all()
        assert losses[-100:].mean() < losses[:20].mean() - 10
        learned = expit(encoder({k: b.numpy(params[k]) for k in init}, x, np.tanh))
        assert np.abs(learned - expit(2.0 * x)).mean() < 0.06
        elbo_before, log_px = R.two_class_discrete_elbo(x, expit(encoder(init, x, np.tanh)))
        elbo_after, _ = R.two_class_discrete_elbo(x, learned)
        assert log_px - elbo_before > 100
        assert log_px - elbo_after < 10

    @pytest.mark.slow
    def test_relaxed_switches_identify_the_true_support_of_a_sparse_regression(self, b):
        """y = X (s * w) + noise, 5 nonzero of 20, s_j ~ Bernoulli(0.2) relaxed,
        w_j ~ N(0, 3^2).  Measured (seeds 0 to 3): at least 0.88 on the support, at most
        0.107 off it."""
        rng = np.random.default_rng(0)
        n, d = 100, 20
        support = np.array([1, 4, 9, 13, 17])
        w_true = np.zeros(d)
        w_true[support] = [2.0, -2.5, 1.5, -1.5, 3.0]
        X = rng.standard_normal((n, d))
        y = X @ w_true + 0.5 * rng.standard_normal(n)

        def model(X, y):
            with b.plate("features", d):
                s = b.sample("s", b.Bernoulli(0.2))
                w = b.sample("w", b.Normal(0.0, 3.0))
            with b.plate("data", n):
                b.sample("y", b.Normal(X @ (s * w), 0.5), obs=y)

        relaxed = b.pc.relax(model, temperature=0.5)
        guide = b.pc.AutoRelaxed(relaxed)
        args = b.array(X), b.array(y)
        params, losses = b.fit(relaxed, guide, *args, steps=800, lr_decay=0.999)
        assert np.isfinite(losses).all()
        probs = b.probs(guide, params, *args)["s"]
        assert probs.shape == (d,)
        assert sorted(np.flatnonzero(probs > 0.5)) == support.tolist(), np.round(probs, 3)

    @pytest.mark.slow
    def test_log_space_relaxation_keeps_every_elbo_finite_at_temperature_0_1_with_50_classes(
        self, b
    ):
        rng = np.random.default_rng(0)
        means = b.array(np.linspace(-10.0, 10.0, 50))
        data = b.array(rng.uniform(-10.0, 10.0, 10))

        def model(data):
            with b.plate("data", 10):
                c = b.sample("c", b.OneHotCategorical(logits=b.array(np.zeros(50))))
                b.sample("x", b.Normal(b.pc.select(means, c), 0.3), obs=data)

        relaxed = b.pc.relax(model, temperature=0.1)
        guide = b.pc.AutoRelaxed(relaxed, temperature=0.1)
        params, losses = b.fit(relaxed, guide, data, steps=2000)
        assert np.isfinite(losses).all()
        for name, value in params.items():
            assert str(value.dtype).endswith("float32"), name
            assert np.isfinite(b.numpy(value)).all(), name
        assert losses[-100:].mean() < losses[:100].mean()


#: The relaxed ELBO's optimum is not the discrete posterior: with the paper's prior and
#: posterior temperatures (1/2 and 2/3) the learned probabilities are under-confident (the
#: Gaussian mixture stalls at MAE 0.048, the amortized guide at 0.08, whatever the number
#: of steps).  A colder prior than posterior shrinks that bias (0.022 and 0.030).
PRIOR_T, POSTERIOR_T = 0.2, 0.5
GMM_LOCS = np.array([-5.0, 0.0, 5.0])
ENCODER_LAYERS = [(1, 8), (8, 1)]  # (fan in, fan out) of the amortized guide's layers

AUTO_N = 200  # elements of the local sites: enough for a test of the initial distribution
AUTO_FAMILIES = {
    "scalar": "binary",
    "vector": "binary",
    "local": "binary",
    "cat": "categorical",
    "local_cat": "categorical",
}
AUTO_SHAPES = {
    "scalar": (),
    "vector": (2,),
    "cat": (4,),
    "local": (AUTO_N,),
    "local_cat": (AUTO_N, 3),
}


def auto_model(b):
    """Relaxable sites of every shape AutoRelaxed handles, and a continuous one."""

    def model():
        b.sample("scalar", b.Bernoulli(0.5))
        b.sample("vector", b.Bernoulli(0.5).expand([2]).to_event(1))
        b.sample("cat", b.OneHotCategorical(logits=b.array(np.zeros(4))))
        b.sample("w", b.Normal(0.0, 1.0))
        with b.plate("data", AUTO_N):
            b.sample("local", b.Bernoulli(0.5))
            b.sample("local_cat", b.OneHotCategorical(logits=b.array(np.zeros(3))))

    return model


def discrete_only_model(b):
    """Relaxable latent sites only: a Bernoulli vector and a categorical."""

    def model():
        b.sample("z", b.Bernoulli(0.3).expand([3]).to_event(1))
        b.sample("c", b.OneHotCategorical(logits=b.array(np.zeros(4))))

    return model


SUBSAMPLE_DATA = np.random.default_rng(3).standard_normal(100)


def subsampled_model(b):
    """A global ``mu`` and a Bernoulli ``z`` per element of a plate of 100, subsampled by
    10."""

    def model(data):
        mu = b.sample("mu", b.Normal(0.0, 3.0))
        with b.plate("data", 100, subsample_size=10) as ind:
            z = b.sample("z", b.Bernoulli(0.5))
            b.sample("x", b.Normal(mu * z, 1.0), obs=data[ind])

    return model


def composed_model(b):
    """A continuous site with a constrained support, one unconstrained, and two relaxable
    sites in a plate: what the AutoGuideList compositions split between parts."""

    def model():
        scale = b.sample("scale", b.LogNormal(0.0, 1.0))
        mu = b.sample("mu", b.Normal(0.0, 10.0))
        with b.plate("data", 6):
            z = b.sample("z", b.Bernoulli(0.5))
            c = b.sample("c", b.OneHotCategorical(logits=b.array(np.zeros(3))))
            mean = mu * z + b.pc.select(b.array(TABLE), c)
            b.sample("x", b.Normal(mean, scale), obs=b.array(np.zeros(6)))

    return model


# --- the enumerable models of the bound tests, and their float64 enumerations ------------

B_PROBS = [0.3, 0.6, 0.5]
B_WEIGHTS = [1.5, -1.0, 0.5]
BOUND_DATA = [1.9, 2.6, 1.2, 2.2, 3.1]
OBS_SCALE = 0.8


def small_bound_model(b):
    """Three Bernoulli sites and a OneHotCategorical; 24 configurations."""

    def model(x):
        c = b.sample("c", b.OneHotCategorical(b.array(C_PROBS)))
        mean = b.pc.select(b.array(TABLE), c)
        for name, p, w in zip(("z1", "z2", "z3"), B_PROBS, B_WEIGHTS, strict=True):
            mean = mean + w * b.sample(name, b.Bernoulli(p))
        with b.plate("obs", len(x)):
            b.sample("x", b.Normal(mean, OBS_SCALE), obs=x)

    return model


def small_configurations():
    """Every configuration (c, (z1, z2, z3)) with log p(z) + log p(x | z), float64."""
    x = np.array(BOUND_DATA)
    rows = []
    for c, *z in itertools.product(range(3), (0, 1), (0, 1), (0, 1)):
        log_prior = np.log(C_PROBS[c]) + sum(
            np.log(p if zi else 1 - p) for p, zi in zip(B_PROBS, z, strict=True)
        )
        mean = TABLE[c] + sum(w * zi for w, zi in zip(B_WEIGHTS, z, strict=True))
        rows.append((c, tuple(z), log_prior + stats.norm.logpdf(x, mean, OBS_SCALE).sum()))
    return rows


def small_discrete_elbo(probs):
    """E_q[log p(x, z) - log q(z)], q the product of the guide's discrete marginals."""
    elbo = 0.0
    for c, z, log_joint in small_configurations():
        log_q = np.log(probs["c"][c]) + sum(
            np.log(probs[n] if zi else 1 - probs[n])
            for n, zi in zip(("z1", "z2", "z3"), z, strict=True)
        )
        elbo += np.exp(log_q) * (log_joint - log_q)
    return float(elbo)


#: The training test's model: ten Bernoulli switches (one vector site) and a
#: OneHotCategorical over four, 4096 configurations, with a sharp posterior (0.98 on one
#: configuration) that an untrained guide misses even with K = 1000 particles.
BIG_NZ, BIG_NC, BIG_DIM, BIG_SCALE = 10, 4, 8, 0.5
_big_rng = np.random.default_rng(0)
BIG_W = _big_rng.standard_normal((BIG_DIM, BIG_NZ))
BIG_TABLE = 2.0 * _big_rng.standard_normal((BIG_DIM, BIG_NC))
BIG_Z_PROBS = np.full(BIG_NZ, 0.3)
BIG_C_PROBS = np.array([0.1, 0.2, 0.3, 0.4])
_big_z_true = np.isin(np.arange(BIG_NZ), [1, 4, 7]).astype(float)
BIG_DATA = BIG_W @ _big_z_true + BIG_TABLE[:, 2] + BIG_SCALE * _big_rng.standard_normal(BIG_DIM)


def big_bound_model(b):
    def model(x):
        z = b.sample("z", b.Bernoulli(b.array(BIG_Z_PROBS)).to_event(1))
        c = b.sample("c", b.OneHotCategorical(b.array(BIG_C_PROBS)))
        mean = z @ b.array(BIG_W.T) + b.pc.select(b.array(BIG_TABLE), c[..., None, :])
        b.sample("x", b.Normal(mean, BIG_SCALE).to_event(1), obs=x)

    return model


def big_log_joint():
    """log p(x, z, c) for every configuration: array (2**BIG_NZ, BIG_NC) and the z rows."""
    zs = np.array(list(itertools.product((0.0, 1.0), repeat=BIG_NZ)))
    log_pz = (zs * np.log(BIG_Z_PROBS) + (1 - zs) * np.log1p(-BIG_Z_PROBS)).sum(1)
    columns = []
    for c in range(BIG_NC):
        mean = zs @ BIG_W.T + BIG_TABLE[:, c]
        log_lik = stats.norm.logpdf(BIG_DATA, mean, BIG_SCALE).sum(1)
        columns.append(log_pz + np.log(BIG_C_PROBS[c]) + log_lik)
    return np.stack(columns, 1), zs


def big_discrete_elbo(probs):
    log_joint, zs = big_log_joint()
    pz = np.clip(probs["z"], 1e-300, 1 - 1e-16)
    log_qz = (zs * np.log(pz) + (1 - zs) * np.log1p(-pz)).sum(1)
    log_q = log_qz[:, None] + np.log(probs["c"])[None, :]
    return float((np.exp(log_q) * (log_joint - log_q)).sum())


LOCAL_LOCS = np.array([-2.0, 0.0, 3.0])
LOCAL_X = np.array([-2.2, 0.4, 2.5, 1.4, -1.0])


def local_log_joint():
    """log p(x_i, z_i = k) of the local-latent mixture, float64, shape (5, 3)."""
    return np.log(1 / 3) + stats.norm.logpdf(LOCAL_X[:, None], LOCAL_LOCS, 1.0)


def local_model(b):
    def model(data):
        with b.plate("data", len(data)):
            z = b.sample("z", b.OneHotCategorical(logits=b.array(np.zeros(3))))
            b.sample("x", b.Normal(b.pc.select(b.array(LOCAL_LOCS), z), 1.0), obs=data)

    return model


def local_guide(b, logits):
    def guide(data):
        with b.plate("data", len(data)):
            b.sample("z", b.pc.ExpConcrete(0.5, logits=b.array(logits)))

    return guide


def _bound_estimates(b, model, guide, params, data, num_samples, seeds):
    return np.array(
        [
            b.discrete_bound(model, guide, params, data, num_samples=num_samples, seed=seed)
            for seed in seeds
        ]
    )


#: (K, number of seeds) of ``_check_bounds``.  Before training, the K = 1000 estimate of
#: the big model is a mixture: about one call in five draws the posterior mode and lands
#: near log p(x), the others 5 to 10 nats below; twenty seeds make its mean stable.
BOUND_SCHEDULE = [(1, 60), (30, 10), (1000, 5)]
BIG_BOUND_SCHEDULE = [(1, 60), (30, 10), (1000, 20)]


def _check_bounds(b, model, guide, params, data, log_px, exact_elbo, stage, big=False):
    """Bound estimates for each K (over seeds): finite, never above log p(x) beyond 4
    standard errors, K = 1 equal to the exact discrete ELBO within 4 standard errors, and
    non-decreasing in K within 3 standard errors.  Returns {K: (mean, se)}."""
    means = {}
    for k, n_seeds in BIG_BOUND_SCHEDULE if big else BOUND_SCHEDULE:
        est = _bound_estimates(b, model, guide, params, data, k, range(n_seeds))
        assert np.all(np.isfinite(est)), (stage, k)
        mean, se = est.mean(), est.std(ddof=1) / math.sqrt(n_seeds)
        assert mean <= log_px + 4 * se + 1e-4, (stage, k, mean, se, log_px)
        means[k] = (mean, se)
    mean1, se1 = means[1]
    assert abs(mean1 - exact_elbo) < 4 * se1 + 1e-3, (stage, mean1, se1, exact_elbo)
    for lo, hi in itertools.pairwise(sorted(means)):
        gap = means[hi][0] - means[lo][0]
        assert gap > -3 * math.hypot(means[lo][1], means[hi][1]), (stage, lo, hi, means)
    return means
