"""What is Pyro's own in the relaxation layer of ``pyro_concrete``.

The workflow both backends share is stated once, in ``tests/relax_suite.py``; here are
Pyro's ``seed`` handler and global seed around ``relax``, ``JitTrace_ELBO``, float64,
``probs`` without autograd history, and torch's simplex-space class next to the
log-space node.  Every expectation is computed independently of the code under test
(closed forms); seeds are fixed.
"""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

import pyro_concrete as pc
from tests.relax_backends import backend
from tests.relax_suite import C_PROBS, auto_model, two_sites


@pytest.fixture(scope="module", autouse=True)
def _warm_up_torch_optim():
    """torch's first optimiser step in a process imports its compiler stack (seconds);
    take that one-off cost here rather than in whichever test steps SVI first."""
    param = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([param])
    param.sum().backward()
    optimiser.step()


@pytest.fixture(autouse=True)
def _fresh_state():
    """One thread (the test machines are shared), a clean param store and a fixed seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
    torch.set_num_threads(threads)


def _t(x, dtype=torch.float32):
    return torch.as_tensor(x, dtype=dtype)


def _trace(fn, *args, **kwargs):
    return poutine.trace(fn).get_trace(*args, **kwargs)


# ---------------------------------------------------------------------------------------
# 5. Semantics of relax
# ---------------------------------------------------------------------------------------

two_site_model = two_sites(backend("pyro"))


def test_seed_handler_and_set_rng_seed_make_relaxed_traces_reproducible():
    relaxed = pc.relax(two_site_model)
    seeded = [_trace(poutine.seed(relaxed, rng_seed=11)) for _ in range(2)]
    other = _trace(poutine.seed(relaxed, rng_seed=12))
    for name in ("z", "c"):
        assert torch.equal(seeded[0].nodes[name]["value"], seeded[1].nodes[name]["value"])
        assert not torch.equal(seeded[0].nodes[name]["value"], other.nodes[name]["value"])
    returned = []
    for _ in range(2):
        pyro.set_rng_seed(5)
        returned.append(relaxed())
    assert all(torch.equal(a, b) for a, b in zip(*returned, strict=True))


def test_a_float64_model_relaxes_to_float64_sites_and_trains_in_float64():
    f64 = torch.float64

    def model():
        with pyro.plate("data", 2):
            z = pyro.sample("z", dist.Bernoulli(_t([0.3, 0.6], f64)))
            c = pyro.sample("c", dist.OneHotCategorical(_t(C_PROBS, f64)))
            mean = z + pc.select(_t([-1.0, 0.0, 1.0], f64), c)
            pyro.sample("x", dist.Normal(mean, 1.0), obs=_t([0.5, -0.5], f64))

    relaxed = pc.relax(model)
    trace = _trace(relaxed)
    for name in ("z", "c"):
        assert trace.nodes[name]["fn"].logits.dtype == f64, name
        assert trace.nodes[name]["value"].dtype == f64, name
    guide = pc.AutoRelaxed(relaxed)
    svi = SVI(relaxed, guide, Adam({"lr": 0.05}), Trace_ELBO())
    assert math.isfinite(svi.step())
    assert all(value.dtype == f64 for value in pyro.get_param_store().values())


# ---------------------------------------------------------------------------------------
# 7. AutoRelaxed
# ---------------------------------------------------------------------------------------


def test_autorelaxed_probs_are_plain_tensors_without_autograd_history():
    """``probs()`` is a ``no_grad`` read-out: a user must be able to call ``.numpy()``."""
    guide = pc.AutoRelaxed(pc.relax(auto_model(backend("pyro"))))
    guide()
    for name, p in guide.probs().items():
        assert not p.requires_grad, name
        p.numpy()


# ---------------------------------------------------------------------------------------
# 3. Low temperature, 50 categories, float32
# ---------------------------------------------------------------------------------------

LOW_T = 0.1
N_CAT = 50
N_POINTS = 10


def _low_temperature_problem():
    rng = np.random.default_rng(0)
    means = _t(np.linspace(-10.0, 10.0, N_CAT))
    data = _t(rng.uniform(-10.0, 10.0, N_POINTS))
    return means, data


def test_torch_relaxed_one_hot_categorical_sites_give_nan_elbo_gradients_at_the_same_setting():
    """The motivation for the log-space node: the same problem with torch's simplex-space
    RelaxedOneHotCategorical in model and guide produces NaN (here, in the ELBO's
    gradient).  Validation is off: with it on, torch rejects its own float32 samples,
    whose sums miss 1 by more than its simplex tolerance, before any density is computed."""
    means, data = _low_temperature_problem()

    def model(data):
        with pyro.plate("data", N_POINTS):
            prior = dist.RelaxedOneHotCategorical(
                _t(LOW_T), logits=torch.zeros(N_CAT), validate_args=False
            )
            c = pyro.sample("c", prior)
            pyro.sample("x", dist.Normal(pc.select(means, c), 0.3), obs=data)

    def guide(data):
        logits = pyro.param("logits", 0.01 * torch.randn(N_POINTS, N_CAT))
        with pyro.plate("data", N_POINTS):
            q = dist.RelaxedOneHotCategorical(_t(LOW_T), logits=logits, validate_args=False)
            pyro.sample("c", q)

    pyro.set_rng_seed(0)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    nan_loss = nan_params = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pyro's "Encountered NaN" warnings
        for _ in range(100):
            nan_loss = math.isnan(svi.step(data))
            nan_params = not torch.isfinite(pyro.param("logits")).all()
            if nan_loss or nan_params:
                break
    # within a few steps the ELBO, or its gradient (which then poisons the guide's logits),
    # is NaN; here it is the gradient, at step 1 to 6 for seeds 0 to 4
    assert nan_loss or nan_params


def test_torch_relaxed_one_hot_categorical_scores_many_own_samples_as_nan_at_t_0_1():
    """logits ~ N(0, 3^2): in float32 at T = 0.1, torch's simplex-space
    class scores almost every one of its own 50-category samples as NaN (about 99%; 42% with
    10 categories), while ExpConcrete scores all of them finitely."""
    pyro.set_rng_seed(0)
    logits = 3.0 * torch.randn(2000, N_CAT)
    torch_fn = dist.RelaxedOneHotCategorical(_t(LOW_T), logits=logits, validate_args=False)
    nan_fraction = float(torch_fn.log_prob(torch_fn.rsample()).isnan().float().mean())
    assert nan_fraction > 0.9
    ours = pc.ExpConcrete(LOW_T, logits=torch_fn.logits)
    assert torch.isfinite(ours.log_prob(ours.rsample())).all()


def test_jit_trace_elbo_traces_a_whole_schedule_once_and_is_silent_when_asked():
    """``pyro_concrete.JitTrace_ELBO`` hands the ``relax_step`` keyword to the compiled
    function as a tensor: six steps of both schedules compile one trace (Pyro's own
    ``JitTrace_ELBO`` compiles one per distinct keyword value), the temperatures follow the
    step (from one parameter state and seed, the loss changes with it), and with
    ``ignore_jit_warnings=True`` no ``TracerWarning`` reaches the user."""

    def model(x):
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Bernoulli(0.3))
            c = pyro.sample("c", dist.OneHotCategorical(_t(C_PROBS)))
            pyro.sample("x", dist.Normal(z + pc.select(_t([-1.0, 0.0, 2.0]), c), 1.0), obs=x)

    relaxed = pc.relax(model, temperature=pc.exponential_decay(1.0, 0.05, 0.3))
    guide = pc.AutoRelaxed(relaxed, temperature=pc.exponential_decay(2.0, 0.05, 0.5))
    elbo = pc.JitTrace_ELBO(ignore_jit_warnings=True)
    svi = SVI(relaxed, guide, Adam({"lr": 0.05}), elbo)
    x = _t([0.5, -1.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [svi.step(x, relax_step=step) for step in range(6)]
        assert all(math.isfinite(loss) for loss in losses)
        seeded = []
        for step in (0, 0, 30):
            pyro.set_rng_seed(0)
            seeded.append(float(elbo.differentiable_loss(relaxed, guide, x, relax_step=step)))
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert len(elbo._loss_and_surrogate_loss.compiled) == 1
    assert seeded[0] == seeded[1] != seeded[2]
