"""The estimators' specification (tests/estimators_suite.py) against ``pyro_concrete``, and
what only Pyro has: two routes to an estimator's gradient, ``loss_and_grads`` (``SVI``)
and ``differentiable_loss`` (``elbo(model, guide)``, torch optimisers, DDP), which must
give every parameter the same gradient."""

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI

import pyro_concrete as pc
from tests.estimator_backends import PyroEstimators
from tests.estimator_references import GUIDE_PARAMS, PROBLEMS, exact_gradient
from tests.estimator_references import problem as make_problem
from tests.estimators_suite import EstimatorsSuite


@pytest.fixture(scope="module")
def backend():
    return PyroEstimators()


class TestPyroEstimators(EstimatorsSuite):
    draws = 400


# ------------------------------------------------- Pyro's two routes to the gradient


def _grads_after(route: str, loss, problem: str, seed: int) -> tuple[float, dict]:
    """The loss and every parameter's ``.grad`` after one step of ``route`` at ``seed``:
    ``SVI``'s ``loss_and_grads``, or ``differentiable_loss(...).backward()`` (what
    ``loss(model, guide)``, a torch optimiser and DDP use)."""
    backend = PyroEstimators()
    params, y = make_problem(problem)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model, guide = backend._problem(problem, params)
    if route == "loss_and_grads":
        value = loss.loss_and_grads(model, guide, backend._y(y))
    else:
        differentiable = loss(model, guide)(backend._y(y))
        differentiable.backward()
        value = differentiable.item()
    store = pyro.get_param_store()
    grads = {k: store.get_param(k).unconstrained().grad for k in store.keys()}
    for k in store.keys():
        store.get_param(k).unconstrained().grad = None
    return value, grads


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(
    "loss",
    [
        lambda: pc.RebarELBO(tune=False, num_particles=2),
        lambda: pc.RebarELBO(eta=0.5, num_particles=2),
        lambda: pc.RebarELBO(num_particles=3, vectorize_particles=True),
        lambda: pc.RelaxELBO(num_particles=2),
    ],
    ids=["rebar", "rebar_tuned", "rebar_vectorized", "relax"],
)
def test_differentiable_loss_gives_the_gradients_of_loss_and_grads(problem, loss):
    """Guide parameters ``-g``, model parameters ``-nabla f(b)``, tuned quantities the
    gradient of ``sum g^2``: the same ``.grad`` either way, from the same start and seed
    (a new loss each time: the first vectorised call draws to guess the plate nesting)."""
    value, grads = _grads_after("loss_and_grads", loss(), problem, 5)
    value_module, grads_module = _grads_after("module", loss(), problem, 5)
    np.testing.assert_allclose(value_module, value, rtol=1e-6)
    assert grads.keys() == grads_module.keys()
    assert all(grads[k] is not None for k in grads)
    for k in grads:
        torch.testing.assert_close(grads_module[k], grads[k], msg=k)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_rebar_eta_descends_the_second_moment_of_the_estimate(problem):
    """With one particle and ``tune_on="parameters"``, ``eta``'s gradient is
    ``d/d eta sum g^2`` over the guide's parameters.  ``g`` is affine in ``eta`` (the noise
    does not depend on it), so the central difference of ``sum g^2`` at the same seed is
    exact up to rounding."""

    def step(eta: float) -> tuple[float, torch.Tensor]:
        loss = pc.RebarELBO(eta=eta, temperature=0.7, tune_on="parameters")
        grads = _grads_after("loss_and_grads", loss, problem, 11)[1]
        moment = sum(grads[k].double().pow(2).sum() for k in GUIDE_PARAMS[problem])
        return float(moment), grads["rebar_eta"]

    eta, h = 0.6, 0.25
    moment_grad = (step(eta + h)[0] - step(eta - h)[0]) / (2 * h)
    np.testing.assert_allclose(float(step(eta)[1]), moment_grad, rtol=1e-3)


def test_the_elbo_module_holds_the_tuned_quantities():
    """``RebarELBO()(model, guide)``: a module whose parameters include ``eta`` and the
    temperatures, the same tensors as the param store's sites of those names."""
    backend = PyroEstimators()
    params, y = make_problem("mixed")
    model, guide = backend._problem("mixed", params)
    loss_fn = pc.RebarELBO()(model, guide)
    loss_fn(backend._y(y))
    names = {"rebar_eta", "b_rebar_temperature", "c_rebar_temperature"}
    store = pyro.get_param_store()
    assert {id(store.get_param(k).unconstrained()) for k in names} == {
        id(p) for p in loss_fn.parameters()
    }
    # a site name with dots keeps its parameter name
    loss_fn.elbo.tuned("encoder.z_rebar_temperature", torch.tensor(0.5))
    assert "encoder.z_rebar_temperature" in store.keys()


@pytest.mark.parametrize("problem", ["mixed", "bernoulli"])
@pytest.mark.parametrize("loss_name", ["RebarELBO", "RelaxELBO"])
def test_with_module_local_params_svi_steps_the_tuned_quantities_outside_the_store(
    loss_name, problem
):
    """``pyro.settings.set(module_local_params=True)``, which Pyro advises for
    ``elbo(model, guide)``: the tuned quantities stay in the estimator's module, out of
    the param store, and ``SVI`` still steps them (and the model's and guide's
    parameters, plain ``pyro.param`` sites here), for a guide that runs in every pass
    (``"mixed"``) and one whose single discrete site could be reused (``"bernoulli"``)."""
    backend = PyroEstimators()
    params, y = make_problem(problem)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model, guide = backend._problem(problem, params)
    with pyro.settings.context(module_local_params=True):
        loss = getattr(pc, loss_name)()
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), loss)
        svi.step(backend._y(y))
        tuned = [p.detach().clone() for p in loss.tuned.parameters()]
        svi.step(backend._y(y))
    assert set(pyro.get_param_store().keys()) == set(params)
    assert len(tuned) >= 2
    assert all(not torch.equal(a, b) for a, b in zip(tuned, loss.tuned.parameters(), strict=True))


@pytest.mark.parametrize("name", ["DisarmELBO", "RebarELBO", "RelaxELBO", "VimcoELBO"])
def test_an_infinite_bernoulli_logit_in_the_guide_is_an_error(name):
    """torch's ``Bernoulli`` accepts a logit of ``+/-inf`` and scores it NaN (``Trace_ELBO``
    returns NaN): the estimators say so instead.  (NumPyro's ``Bernoulli`` rejects it.)"""
    logits = torch.tensor([0.0, float("inf"), -float("inf")])

    def model():
        pyro.sample("z", pyro.distributions.Bernoulli(logits=torch.zeros(3)).to_event(1))

    def guide():
        pyro.sample("z", pyro.distributions.Bernoulli(logits=logits).to_event(1))

    assert torch.isnan(pyro.distributions.Bernoulli(logits=logits).log_prob(torch.ones(3))[1])
    with pytest.raises(ValueError, match=f"{name}: guide site 'z' has a Bernoulli logit of"):
        getattr(pc, name)().loss_and_grads(model, guide)


# ------------------------------------------- tensors outside the param store, evaluation


class _Encoder(pyro.nn.PyroModule):
    """The guide's logits as a ``PyroParam`` read by a method other than ``forward``, so
    that no ``pyro.param`` statement records it."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = pyro.nn.PyroParam(a)

    def logits(self) -> torch.Tensor:
        return self.a


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss, k",
    [
        (lambda: pc.RebarELBO(tune=False), 1),
        (lambda: pc.RebarELBO(eta=0.5, temperature=1.0), 1),
        (lambda: pc.RelaxELBO(), 1),
    ],
    ids=["rebar", "rebar_tuned", "relax"],
)
def test_every_tensor_a_pass_reads_gets_its_unbiased_gradient(loss, k):
    """The ``"bernoulli"`` problem with no ``pyro.param`` in it: the guide's logits in a
    ``PyroModule`` read outside ``forward``, the model's prior and weights tensors it
    closes over.  ``differentiable_loss`` (a torch optimiser's route) gives each the
    gradient of the objective, as ``Trace_ELBO`` does: the mean of 600 draws against the
    float64 enumeration.  (DisARM's, VIMCO's and RLOO's surrogates are differentiated
    whole, so every leaf gets its gradient there; the generated suite's models with
    closed-over and ``PyroModule`` parameters check them too.)"""
    params, y = make_problem("bernoulli", seed=3)
    leaves = {
        k_: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k_, v in params.items()
    }
    encoder = _Encoder(leaves.pop("a").detach())
    dist = pyro.distributions

    def model(y):
        with pyro.plate("data", 2):
            z = pyro.sample("z", dist.Bernoulli(logits=leaves["prior"]).to_event(1))
            pyro.sample("y", dist.Normal(z @ leaves["W"], 1.0).to_event(1), obs=y)

    def guide(y):
        with pyro.plate("data", 2):
            pyro.sample("z", dist.Bernoulli(logits=encoder.logits()).to_event(1))

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    estimator, tensors = loss(), {**leaves, "a": encoder.a}
    draws = {name: [] for name in tensors}
    for _ in range(600):
        estimator.differentiable_loss(model, guide, torch.tensor(y, dtype=torch.float32)).backward()
        for name, tensor in tensors.items():
            draws[name].append(-tensor.grad.numpy().copy())
            tensor.grad = None
    exact = exact_gradient("bernoulli", params, y, k=k)
    for name, value in exact.items():
        d = np.stack(draws[name]).reshape(600, -1)
        z = (d.mean(0) - value.ravel()) / (d.std(0, ddof=1) / np.sqrt(600))
        assert np.abs(z).max() < 4.5, (name, z)


@pytest.mark.parametrize("name", ["RebarELBO", "RelaxELBO", "DisarmELBO", "VimcoELBO"])
def test_svi_evaluate_loss_runs_without_gradients(name):
    """``SVI.evaluate_loss`` runs the loss under ``torch.no_grad``: the objective's estimate,
    without the tuned estimators' second-order gradients (which need a graph)."""
    backend = PyroEstimators()
    params, y = make_problem("bernoulli")
    pyro.clear_param_store()
    model, guide = backend._problem("bernoulli", params)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), getattr(pc, name)())
    loss = svi.evaluate_loss(backend._y(y))
    assert np.isfinite(loss)
    assert all(p.grad is None for p in pyro.get_param_store().values())


def test_what_tunable_returns_trains_with_any_instance():
    """``SVI(model, RebarELBO().tunable(guide), optim, RebarELBO())``, two instances: the
    same steps as one instance (the loss holds what it tunes; ``tunable`` returns the
    guide itself in Pyro)."""

    def tuned_after(guide_loss, loss) -> dict:
        backend = PyroEstimators()
        params, y = make_problem("bernoulli")
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        model, guide = backend._problem("bernoulli", params)
        svi = SVI(model, guide_loss.tunable(guide), pyro.optim.Adam({"lr": 0.05}), loss)
        for _ in range(5):
            svi.step(backend._y(y))
        return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}

    one = pc.RebarELBO()
    expected, got = tuned_after(one, one), tuned_after(pc.RebarELBO(), pc.RebarELBO())
    assert expected.keys() == got.keys() and "rebar_eta" in got
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], msg=k)
