"""What the Concrete family promises inside Pyro beyond the shared contract.

Autoguides and NUTS on Concrete-family latent sites, training a Bernoulli /
OneHotCategorical model through ``relax`` with a hand-written Concrete guide, the
straight-through ``HardSample`` under tensor operations, validation messages, and a plain
``pyro.sample`` site under ``poutine.trace``.
"""

import pickle

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from scipy import stats

import pyro_concrete as pc

P_MIN = 1e-3
CONTINUOUS = ("ExpConcrete", "Concrete", "LogitBinaryConcrete", "BinaryConcrete")
LOGITS = {
    "ExpConcrete": torch.tensor([0.5, -0.3, 0.1]),
    "Concrete": torch.tensor([0.5, -0.3, 0.1]),
    "LogitBinaryConcrete": torch.tensor(0.4),
    "BinaryConcrete": torch.tensor(0.4),
}


@pytest.fixture(autouse=True)
def _fresh_param_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _prior(name, temperature=0.5):
    return getattr(pc, name)(temperature, logits=LOGITS[name])


# --- autoguides and MCMC ----------------------------------------------------------------


@pytest.mark.parametrize("name", CONTINUOUS)
def test_auto_normal_trains_on_a_concrete_family_latent_site(name):
    """AutoNormal finds ``biject_to(support)`` for the site and SVI runs with finite losses;
    the guide's samples lie in the support and the prior's log_prob of them is finite."""
    pyro.set_rng_seed(0)

    def model():
        z = pyro.sample("z", _prior(name))
        signal = z.exp()[..., 0] if name == "ExpConcrete" else z.reshape(-1)[0]
        pyro.sample("obs", dist.Normal(signal, 1.0), obs=torch.tensor(0.3))

    guide = AutoNormal(model)
    svi = SVI(
        model,
        guide,
        pyro.optim.Adam({"lr": 0.05}),
        Trace_ELBO(num_particles=4, vectorize_particles=True),
    )
    losses = [svi.step() for _ in range(100)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < np.mean(losses[:20])  # it trains
    z = guide()["z"].detach()
    prior = _prior(name)
    assert prior.support.check(z).all()
    assert torch.isfinite(prior.log_prob(z)).all()


def _nuts_versus_direct(name, temperature, num_samples):
    pyro.set_rng_seed(1)
    prior = _prior(name, temperature)

    def model():
        pyro.sample("z", prior)

    mcmc = MCMC(NUTS(model), num_samples=num_samples, warmup_steps=200, disable_progbar=True)
    mcmc.run()
    by_nuts = mcmc.get_samples()["z"].reshape(num_samples, -1).numpy()
    direct = prior.sample((20000,)).reshape(20000, -1).numpy()
    return by_nuts, direct


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, temperature",
    [("ExpConcrete", 0.5), ("ExpConcrete", 2.0), ("Concrete", 0.7), ("BinaryConcrete", 0.7)],
)
def test_nuts_on_a_concrete_family_prior_returns_the_prior(name, temperature):
    """A model made only of the prior: NUTS samples (in ``biject_to(support)``'s chart,
    with its Jacobian) must match direct samples, coordinate by coordinate (two-sample
    Kolmogorov-Smirnov on every other draw, thinned against autocorrelation).  With the
    paper's unnormalised ExpConcrete density, NUTS would return a different law."""
    by_nuts, direct = _nuts_versus_direct(name, temperature, num_samples=800)
    for k in range(by_nuts.shape[1]):
        assert stats.ks_2samp(by_nuts[::2, k], direct[:, k]).pvalue > P_MIN


# --- a discrete model trained through its relaxation -----------------------------------


def test_discrete_model_trains_with_a_hand_written_concrete_guide():
    """``relax`` turns the OneHotCategorical / Bernoulli sites into ExpConcrete /
    LogitBinaryConcrete sites of the same names; a hand-written guide over those names
    trains under Trace_ELBO and puts its mass where the exact discrete posterior does."""
    pyro.set_rng_seed(2)
    means = torch.tensor([-2.0, 0.0, 2.0])
    data = torch.tensor([1.7, 2.4, 1.9, 2.2])
    prior_probs = torch.tensor([0.3, 0.3, 0.4])

    def model():
        z = pyro.sample("z", dist.OneHotCategorical(probs=prior_probs))
        b = pyro.sample("b", dist.Bernoulli(0.5))
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal((z * means).sum(-1), 1.0), obs=data)
            pyro.sample("y", dist.Normal(3.0 * b, 1.0), obs=data + 0.6)

    def guide():
        qz = pyro.param("qz", torch.zeros(3))
        qb = pyro.param("qb", torch.tensor(0.0))
        pyro.sample("z", pc.ExpConcrete(0.5, logits=qz))
        pyro.sample("b", pc.LogitBinaryConcrete(0.5, logits=qb))

    relaxed = pc.relax(model, temperature=0.5)
    svi = SVI(relaxed, guide, pyro.optim.Adam({"lr": 0.1}), Trace_ELBO())
    losses = [svi.step() for _ in range(300)]
    assert np.isfinite(losses).all()

    # the exact posterior of the discrete model, by Bayes' rule
    log_post_z = prior_probs.log() + dist.Normal(means[:, None], 1.0).log_prob(data).sum(-1)
    post_z = log_post_z.softmax(-1)
    y = data + 0.6
    log_odds_b = (dist.Normal(3.0, 1.0).log_prob(y) - dist.Normal(0.0, 1.0).log_prob(y)).sum()
    post_b = torch.sigmoid(log_odds_b)
    assert post_z[2] > 0.99 and post_b > 0.99
    q_z = pyro.param("qz").detach().softmax(-1)
    q_b = pyro.param("qb").detach().sigmoid()
    # a relaxed guide at lambda = 1/2 never reaches the vertex; over seeds q sits in 0.86-0.95
    assert q_z.argmax() == 2 and q_z[2] > 0.8
    assert q_b > 0.8


# --- HardSample ------------------------------------------------------------------------


def _straight_through_sample(name):
    pyro.set_rng_seed(3)
    if name == "ConcreteStraightThrough":
        st = pc.ConcreteStraightThrough(0.5, logits=torch.tensor([0.3, -0.2, 0.9]))
    else:
        st = pc.BinaryConcreteStraightThrough(0.5, logits=torch.tensor([0.3, -0.2, 0.9]))
    return st, st.rsample((2,))


OPERATIONS = {
    "clone": lambda h: h.clone(),
    "detach": lambda h: h.detach(),
    "expand": lambda h: h.expand(4, *h.shape),
    "to": lambda h: h.to(torch.float64),
    "contiguous": lambda h: h.contiguous(),
    "pickle": lambda h: pickle.loads(pickle.dumps(h)),
}


@pytest.mark.parametrize("op", list(OPERATIONS))
@pytest.mark.parametrize("name", ["ConcreteStraightThrough", "BinaryConcreteStraightThrough"])
def test_hard_sample_keeps_its_relaxed_sample_through(name, op):
    """Pyro issue #3127: an attribute stashed on a plain tensor is lost by clone/detach/
    expand; a ``HardSample`` keeps the relaxed sample, so log_prob scores it unchanged."""
    st, hard = _straight_through_sample(name)
    expected = st.log_prob(hard)
    out = OPERATIONS[op](hard)
    assert isinstance(out, pc.HardSample)
    np.testing.assert_array_equal(
        out.numpy(), OPERATIONS[op](hard.detach().as_subclass(torch.Tensor)).numpy()
    )
    assert out.relaxed.shape == out.shape
    got = st.log_prob(out)
    torch.testing.assert_close(
        got.to(expected.dtype), expected.expand(got.shape), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("op", list(OPERATIONS))
@pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
def test_relaxed_sample_keeps_its_exact_log_space_value_through(name, op):
    """At T = 0.03 a float32 sample rounds onto the boundary; after each operation it
    still carries its exact log-space value and scores finitely, as before it."""
    pyro.set_rng_seed(5)
    d = getattr(pc, name)(0.03, logits=torch.linspace(-6.0, 6.0, 12))
    x = d.rsample((3,))
    assert ((x == 0) | (x == 1)).any()
    expected = d.log_prob(x)
    out = OPERATIONS[op](x)
    assert isinstance(out, pc.RelaxedSample) and out.log_space.shape == out.shape
    got = d.log_prob(out)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(
        got.to(expected.dtype), expected.expand(got.shape), rtol=1e-6, atol=1e-6
    )


def test_hard_sample_without_its_relaxed_sample_is_refused():
    st, hard = _straight_through_sample("ConcreteStraightThrough")
    plain = hard * 1  # arithmetic returns a plain tensor: the relaxed sample is gone
    assert not isinstance(plain, pc.HardSample)
    with pytest.raises(ValueError, match="relaxed"):
        st.log_prob(plain)


def test_straight_through_gradient_reaches_the_logits_through_the_hard_value():
    logits = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    pyro.set_rng_seed(4)
    hard = pc.ConcreteStraightThrough(0.5, logits=logits).rsample()
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    (grad,) = torch.autograd.grad((hard * torch.tensor([1.0, 2.0, 3.0])).sum(), [logits])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


# --- validation ------------------------------------------------------------------------


def test_hard_concrete_stretch_must_straddle_the_unit_interval():
    with pytest.raises(ValueError, match="low"):
        pc.HardConcrete(0.5, logits=torch.zeros(2), low=0.1)
    with pytest.raises(ValueError, match="high"):
        pc.HardConcrete(0.5, logits=torch.zeros(2), high=0.9)


def test_categorical_classes_reject_scalar_logits():
    with pytest.raises(ValueError, match="logits"):
        pc.Concrete(0.5, logits=torch.tensor(0.3))


@pytest.mark.parametrize("name", ["ExpConcrete", "Concrete", "BinaryConcrete", "HardConcrete"])
def test_validation_message_names_the_parameter_and_its_constraint(name):
    logits = torch.tensor(0.1) if "Binary" in name or "Hard" in name else torch.tensor([0.1, 0.2])
    with pytest.raises(ValueError, match="temperature") as info:
        getattr(pc, name)(torch.tensor(-1.0), logits=logits, validate_args=True)
    assert "constraint" in str(info.value)


# --- a site in a model -----------------------------------------------------------------


def test_concrete_site_under_poutine_trace():
    def model():
        return pyro.sample("z", pc.Concrete(0.5, logits=torch.zeros(3)))

    pyro.set_rng_seed(5)
    trace = poutine.trace(model).get_trace()
    site = trace.nodes["z"]
    assert site["type"] == "sample" and not site["is_observed"]
    assert isinstance(site["fn"], pc.Concrete)
    z = site["value"]
    assert z.shape == (3,) and torch.allclose(z.sum(), torch.tensor(1.0))
    trace.compute_log_prob()
    log_p = site["log_prob"]
    assert torch.isfinite(log_p)
    # the site's log_prob is the density at the recorded value
    torch.testing.assert_close(log_p, pc.Concrete(0.5, logits=torch.zeros(3)).log_prob(z.clone()))
    assert torch.isfinite(trace.log_prob_sum())


# --- masked categories ----------------------------------------------------------------


def test_masked_one_hot_categorical_trains_after_relax_with_auto_relaxed():
    def model():
        pyro.sample("z", dist.OneHotCategorical(logits=torch.tensor([0.0, -float("inf"), 0.0])))

    relaxed = pc.relax(model)
    svi = SVI(relaxed, pc.AutoRelaxed(relaxed), pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    losses = [svi.step() for _ in range(20)]
    assert np.isfinite(losses).all()


# --- a guide's sample scored by the model's prior ---------------------------------------


@pytest.mark.parametrize("name", ["Concrete", "BinaryConcrete"])
def test_a_guide_sample_is_scored_exactly_by_the_model_prior_at_low_temperature(name):
    """The sample carries its exact log-space value through the trace: at T = 0.03 float32
    samples round onto the boundary, and the prior still scores them finitely."""
    n = 20
    logits = torch.linspace(-8.0, 8.0, n) if name == "BinaryConcrete" else torch.zeros(n)

    def model():
        pyro.sample("z", getattr(pc, name)(0.03, logits=logits).to_event(1 - (name == "Concrete")))

    def guide():
        a = pyro.param("a", torch.zeros(n))
        pyro.sample("z", getattr(pc, name)(0.03, logits=a).to_event(1 - (name == "Concrete")))

    pyro.set_rng_seed(0)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    rounded = 0
    for _ in range(30):
        z = poutine.trace(guide).get_trace().nodes["z"]["value"]
        rounded += int(((z == 0) | (z == 1)).any())
        assert np.isfinite(svi.step())
    assert rounded > 0  # the regime is exercised
    assert torch.isfinite(pyro.param("a")).all()
