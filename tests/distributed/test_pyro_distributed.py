"""Specification of data-parallel relaxed SVI in Pyro (``pyro_concrete.distributed``).

In-process tests check the pieces on one process; the ``slow`` tests launch Lightning's DDP
strategy with two processes on the gloo backend: ``examples/distributed_pyro.py`` against
one process with the same global batch, ``pyro_ddp_worker.py`` for ``AutoRelaxed``,
the sharded bound and the refusals, and ``pyro_estimator_ddp_worker.py`` for the
estimators with tuned quantities.  References are computed independently: the mixture's
log-likelihood with scipy in float64, the held-out bound's standard error from per-chunk
bounds of the saved parameters.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.nn import PyroModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyro_concrete as pc
from pyro_concrete.distributed import LightningSVI, rank_seed, sharded_discrete_bound
from pyro_concrete.problems import SigmoidBeliefNet, gaussian_mixture, mixture_data
from tests.distributed.pyro_ddp_worker import (
    BATCH,
    LOCS,
    NUM_DATA,
    indexed_mixture,
    indexed_plate,
    posterior_guide,
)
from tests.distributed.reference import mixture_log_likelihood

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_state():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _given_locs():
    return pyro.poutine.block(
        pyro.poutine.condition(gaussian_mixture, data={"locs": torch.tensor(LOCS)}),
        hide=["locs"],
    )


def _fit(plan: LightningSVI, loader: DataLoader, steps: int = 1) -> None:
    pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(plan, loader)


def _mixture_x() -> torch.Tensor:
    return torch.as_tensor(mixture_data(NUM_DATA, LOCS, seed=0)[1])


# --- one process ---------------------------------------------------------------------------


def test_rank_seeds_are_reproducible_and_distinct():
    seeds = [rank_seed(7, rank) for rank in range(64)]
    assert seeds == [rank_seed(7, rank) for rank in range(64)]
    assert len(set(seeds)) == 64
    assert rank_seed(8, 0) != rank_seed(7, 0)
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize(
    ("seed", "rank", "message"),
    [
        (-1, 0, "seed must be an integer >= 0, got -1"),
        (0, -2, "rank must be an integer >= 0, got -2"),
    ]
    + [(0.5, 0, "seed must be an integer >= 0, got 0.5")],
)
def test_rank_seed_rejects_bad_arguments(seed, rank, message):
    with pytest.raises(ValueError, match=message):
        rank_seed(seed, rank)


def _relaxed_mixture_plan(seed: int) -> tuple[LightningSVI, DataLoader]:
    pl.seed_everything(0, verbose=False)
    pyro.clear_param_store()
    x, idx = _mixture_x(), torch.arange(NUM_DATA)
    model = pc.relax(indexed_mixture, 0.5)
    guide = pc.AutoRelaxed(model, create_plates=indexed_plate)
    loss_fn = Trace_ELBO()(model, guide)
    loss_fn(idx[:BATCH], x[:BATCH])
    return LightningSVI(loss_fn, lr=0.05, seed=seed), DataLoader(TensorDataset(idx, x), BATCH)


def test_each_run_draws_the_noise_of_its_rank_seed():
    losses = {}
    for seed in (3, 3, 4):
        plan, loader = _relaxed_mixture_plan(seed)
        _fit(plan, loader, steps=2)
        assert torch.initial_seed() == rank_seed(seed, 0)
        losses.setdefault(seed, []).append(plan.losses)
    assert losses[3][0] == losses[3][1]  # same start, same seed: the same run
    assert losses[3][0][0] != losses[4][0][0]  # same start, another seed: other noise


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
def test_any_elbo_with_a_differentiable_loss_trains(elbo):
    net = SigmoidBeliefNet((4,), hidden=None, observed=6)
    loss_fn = elbo()(pc.relax(net.model, 0.5), pc.relax(net.guide, 2 / 3))
    x = torch.bernoulli(torch.full((BATCH, 6), 0.5))
    loss_fn(x)
    before = [p.detach().clone() for p in net.parameters()]
    plan = LightningSVI(loss_fn, net, lr=0.01)
    _fit(plan, DataLoader(TensorDataset(x), BATCH), steps=2)
    assert len(plan.losses) == 2 and np.isfinite(plan.losses).all()
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))


def test_an_elbo_without_a_differentiable_loss_is_refused():
    net = SigmoidBeliefNet((4,), hidden=None, observed=6)
    loss_fn = TraceGraph_ELBO()(pc.relax(net.model, 0.5), pc.relax(net.guide, 2 / 3))
    with pytest.raises(ValueError, match="TraceGraph_ELBO has no differentiable_loss"):
        LightningSVI(loss_fn, net)


def test_parameters_must_exist_before_fit():
    model = pc.relax(gaussian_mixture, 0.5)
    plan = LightningSVI(Trace_ELBO()(model, pc.AutoRelaxed(model)))
    with pytest.raises(ValueError, match=r"no parameters yet.*loss_fn\(\*batch\) once"):
        _fit(plan, DataLoader(TensorDataset(_mixture_x()), BATCH))


def test_parameters_outside_the_trained_modules_are_refused():
    net = SigmoidBeliefNet((4,), hidden=None, observed=6)
    loss_fn = Trace_ELBO()(pc.relax(net.model, 0.5), pc.relax(net.guide, 2 / 3))
    x = torch.bernoulli(torch.full((BATCH, 6), 0.5))
    loss_fn(x)
    with pytest.raises(ValueError, match=r"parameter 'encoder.*LightningSVI\(loss_fn, module"):
        _fit(LightningSVI(loss_fn, lr=0.01), DataLoader(TensorDataset(x), BATCH))
    _fit(LightningSVI(loss_fn, net, lr=0.01), DataLoader(TensorDataset(x), BATCH))


def test_a_guide_drawing_its_own_subsample_is_refused():
    x, idx = _mixture_x(), torch.arange(NUM_DATA)
    model = pc.relax(indexed_mixture, 0.5)
    loss_fn = Trace_ELBO()(model, pc.AutoRelaxed(model))
    loss_fn(idx[:BATCH], x[:BATCH])
    with pytest.raises(ValueError, match=r"site 'z'.*plate 'data'.*create_plates"):
        _fit(LightningSVI(loss_fn), DataLoader(TensorDataset(idx, x), BATCH))


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "two_batches_per_epoch"])
def test_a_parameter_per_slot_of_the_batch_is_refused_on_one_process(shuffle):
    """``AutoRelaxed`` on a plate of the batch's size: slot ``i`` holds another point at
    each step (a shuffled loader, or the second batch of the epoch), on one process as on
    several."""
    x = _mixture_x()
    model = pc.relax(gaussian_mixture, 0.5)
    loss_fn = Trace_ELBO()(model, pc.AutoRelaxed(model))
    loss_fn(x[:BATCH])
    with pytest.raises(ValueError, match=r"plate 'data' \(size 32, the batch size\), which is"):
        _fit(LightningSVI(loss_fn), DataLoader(TensorDataset(x), BATCH, shuffle=shuffle))


def test_a_parameter_per_point_trains_on_one_unshuffled_batch_of_the_data_set():
    x = _mixture_x()
    model = pc.relax(gaussian_mixture, 0.5)
    loss_fn = Trace_ELBO()(model, pc.AutoRelaxed(model))
    loss_fn(x)
    plan = LightningSVI(loss_fn)
    _fit(plan, DataLoader(TensorDataset(x), len(x)), steps=2)
    assert len(plan.losses) == 2 and np.isfinite(plan.losses).all()


def _discrete_sbn(elbo_name: str) -> tuple:
    """A small discrete sigmoid belief net, its data, ``pyro_concrete.<elbo_name>()`` and
    the guide to train with it, the parameters created: the same start on every call."""
    pl.seed_everything(0, verbose=False)
    pyro.clear_param_store()
    x = torch.bernoulli(torch.full((4 * BATCH, 6), 0.5))
    net = SigmoidBeliefNet((4,), hidden=None, observed=6)
    elbo = getattr(pc, elbo_name)()
    guide = elbo.tunable(net.guide)
    elbo(net.model, guide)(x[:BATCH])
    return net, elbo, x, guide


@pytest.mark.parametrize("elbo_name", ["RebarELBO", "RelaxELBO", "NvilELBO"])
def test_an_estimator_takes_the_steps_of_svi_on_one_process(elbo_name):
    """``LightningSVI`` (torch's Adam on ``differentiable_loss``) and Pyro's ``SVI``
    (``loss_and_grads``, Pyro's Adam) from the same start with the same noise: the same
    parameters after 3 steps, the estimator's own quantities included (REBAR's and
    RELAX's tuned ones, NVIL's baseline network and running moments)."""
    net, elbo, x, guide = _discrete_sbn(elbo_name)
    loader = DataLoader(TensorDataset(x), BATCH)
    tuned_before = [p.detach().clone() for p in elbo.tuned.parameters()]
    _fit(LightningSVI(elbo(net.model, guide), net, lr=0.05, seed=1), loader, steps=3)
    lightning = [p.detach().clone() for p in (*net.parameters(), *elbo.tuned.parameters())]

    net, elbo, x, guide = _discrete_sbn(elbo_name)
    svi = SVI(net.model, guide, pyro.optim.Adam({"lr": 0.05}), elbo)
    pyro.set_rng_seed(rank_seed(1, 0))
    for _, (batch,) in zip(range(3), loader, strict=False):
        svi.step(batch)
    for a, b in zip(lightning, (*net.parameters(), *elbo.tuned.parameters()), strict=True):
        torch.testing.assert_close(a, b)
    assert all(
        not torch.equal(a, b) for a, b in zip(tuned_before, elbo.tuned.parameters(), strict=True)
    )


class _Guide(PyroModule):
    """``z ~ Bernoulli(logits=a)`` per point, and ``w`` too once ``extra`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(()))
        self.extra = False

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", len(x)):
            for name in ("z", "w") if self.extra else ("z",):
                pyro.sample(name, dist.Bernoulli(logits=self.a))


def _prior(x: torch.Tensor) -> None:
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Bernoulli(0.5))
        pyro.sample("w", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def test_a_tuned_quantity_created_during_training_is_refused():
    """A site first reached during training: REBAR's temperature for it would not be in
    the optimiser (nor averaged by DDP)."""
    guide, x = _Guide(), torch.randn(BATCH)
    loss_fn = pc.RebarELBO()(pyro.poutine.block(_prior, hide=["w"]), guide)
    loss_fn(x)
    guide.extra = True
    with pytest.raises(ValueError, match=r"'loss_fn.tuned.w_rebar_temperature.*created during"):
        _fit(LightningSVI(loss_fn), DataLoader(TensorDataset(x), BATCH))


def test_the_sharded_bound_on_one_process_is_the_data_sets_bound():
    x = _mixture_x()
    bound = sharded_discrete_bound(_given_locs(), posterior_guide, x, num_samples=3)
    np.testing.assert_allclose(bound, mixture_log_likelihood(x.numpy(), LOCS), rtol=1e-6)


def test_the_sharded_bound_refuses_global_sites():
    with pytest.raises(ValueError, match="sum over shards only when every sample site"):
        sharded_discrete_bound(gaussian_mixture, posterior_guide, _mixture_x())


# --- two processes (Lightning DDP, gloo) ---------------------------------------------------


def _launch(*command: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _reports(prefix: Path, world: int) -> list[dict]:
    return [json.loads(Path(f"{prefix}.rank{r}.json").read_text()) for r in range(world)]


def _same_parameters(prefix: Path, world: int) -> bool:
    states = [torch.load(f"{prefix}.rank{r}.pt") for r in range(world)]
    return all(torch.equal(states[0][k], s[k]) for s in states[1:] for k in states[0])


@pytest.mark.slow
def test_ddp_keeps_autorelaxed_in_step_and_sums_the_bound_over_shards(tmp_path):
    prefix = tmp_path / "worker"
    _launch(str(ROOT / "tests/distributed/pyro_ddp_worker.py"), str(prefix), "2")
    reports = _reports(prefix, 2)
    assert [r["seed"] for r in reports] == [rank_seed(0, 0), rank_seed(0, 1)]
    assert _same_parameters(prefix, 2)  # one parameter per point, identical on both ranks
    # every point's assignment learned, whichever rank's shard it fell in
    error = np.abs(np.array(reports[0]["probs"]) - np.array(reports[0]["posterior"]))
    assert error.max(1).mean() < 0.1
    reference = mixture_log_likelihood(_mixture_x().numpy(), LOCS)
    for report in reports:  # the exact posterior: every particle's weight is p(x_i)
        np.testing.assert_allclose(report["bound"], reference, rtol=1e-6)
        assert report["collectives"] == 1
        assert "sum over shards only when every sample site" in report["global_site_error"]
        assert (
            "plate 'data' (size 32, the batch size), which is not subsampled" in (report["refusal"])
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    # RELAX holds both kinds of tuned quantity (PyroParams and a module's weights)
    "elbo_name",
    [pytest.param("RebarELBO", marks=pytest.mark.extended), "RelaxELBO"],
)
def test_ddp_averages_an_estimators_tuned_quantities(tmp_path, elbo_name):
    """REBAR's ``eta`` and temperatures, RELAX's control variate: parameters of the loss
    module, so DDP averages their gradients like any other; the ranks draw different
    noise and end with the same tuned quantities and the same net, both moved."""
    prefix = tmp_path / "worker"
    _launch(
        str(ROOT / "tests/distributed/pyro_estimator_ddp_worker.py"), str(prefix), "2", elbo_name
    )
    reports = _reports(prefix, 2)
    assert [r["seed"] for r in reports] == [rank_seed(0, 0), rank_seed(0, 1)]
    assert reports[0]["losses"] != reports[1]["losses"]
    assert np.isfinite([r["losses"] for r in reports]).all()
    assert _same_parameters(prefix, 2)
    assert reports[0]["tuned"] == reports[1]["tuned"]
    before, after = reports[0]["tuned_before"], reports[0]["tuned"]
    assert before.keys() == after.keys() and len(before) >= 2
    assert all(before[k] != after[k] for k in before)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(os.environ.get("CONCRETE_MNIST", "")),
    reason="needs binarized MNIST: set CONCRETE_MNIST=/path/to/binarized_mnist.npz",
)
def test_the_example_trains_the_discrete_net_with_rebar_on_two_processes(tmp_path):
    small = ["--steps", "20", "--latents", "10", "--train-size", "512", "--test-size", "64"]
    small += ["--samples", "2", "--batch-size", "32", "--elbo", "RebarELBO", "--discrete"]
    example = str(ROOT / "examples/distributed_pyro.py")
    _launch(example, "--devices", "2", *small, "--report", f"{tmp_path}/a")
    ranks = _reports(tmp_path / "a", 2)
    assert _same_parameters(tmp_path / "a", 2)
    assert ranks[0]["bound"] == ranks[1]["bound"] and np.isfinite(ranks[0]["bound"])


def _chunk_bounds(state_path: str, test: torch.Tensor, latents: int, chunks: int) -> np.ndarray:
    """The held-out bound of the saved net, one value per chunk of the test set."""
    net = SigmoidBeliefNet((latents,), hidden=None)
    net.load_state_dict(torch.load(state_path))
    guide = pc.relax(net.guide, 2 / 3)
    pyro.set_rng_seed(0)
    return np.array(
        [pc.discrete_bound(net.model, guide, c, num_samples=10) for c in test.chunk(chunks)]
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(os.environ.get("CONCRETE_MNIST", "")),
    reason="needs binarized MNIST: set CONCRETE_MNIST=/path/to/binarized_mnist.npz",
)
def test_ddp_matches_one_process_with_the_global_batch(tmp_path):
    """2 ranks of batch 32 against 1 process of batch 64, same seed, 200 steps: the ranks
    draw different noise and hold identical parameters; the loss curves agree within their
    noise and the held-out bounds within their standard error."""
    small = ["--steps", "200", "--latents", "20", "--train-size", "4096"]
    small += ["--test-size", "500", "--samples", "10"]
    example = str(ROOT / "examples/distributed_pyro.py")
    _launch(example, "--devices", "2", "--batch-size", "32", *small, "--report", f"{tmp_path}/a")
    _launch(example, "--devices", "1", "--batch-size", "64", *small, "--report", f"{tmp_path}/b")
    ranks, (one,) = _reports(tmp_path / "a", 2), _reports(tmp_path / "b", 1)
    assert ranks[0]["seed"] != ranks[1]["seed"]
    assert _same_parameters(tmp_path / "a", 2)

    # the global batch's loss is the ranks' mean (each rank's loss has the data set's scale)
    curves = np.array([np.mean([r["losses"] for r in ranks], 0), one["losses"]]) / 4096
    windows = curves.reshape(2, 8, 25)
    noise = np.sqrt((windows.var(2) / 25).sum(0))
    assert (np.abs(windows.mean(2)[0] - windows.mean(2)[1]) < 4 * noise).all()

    test = pc.load_binarized_mnist()["test"][:500]
    chunks = [_chunk_bounds(f"{tmp_path}/{run}.rank0.pt", test, 20, 50) for run in ("a", "b")]
    standard_error = np.sqrt(len(chunks[1]) * chunks[1].var(ddof=1))
    assert abs(chunks[0].sum() - chunks[1].sum()) < 2 * standard_error
    # the example's own sharded bound is the same kind of number
    assert abs(ranks[0]["bound"] - chunks[0].sum()) < 2 * standard_error
