"""Run by ``test_pyro_distributed.py`` as ``python pyro_ddp_worker.py OUT WORLD``; Lightning's
DDP strategy starts the other ranks by running it again.  Each rank writes
``OUT.rank{r}.json`` (and its guide's parameters to ``OUT.rank{r}.pt``) with:

- ``seed``: torch's seed on this rank after training;
- ``probs`` / ``posterior``: an ``AutoRelaxed`` guide of the Gaussian mixture with its
  plate indexed by the points' global positions, trained under DDP, and the exact
  posterior at the learned locations (every point, both ranks' shards);
- ``bound``: ``sharded_discrete_bound`` of the mixture at fixed locations with the exact
  posterior as guide, every rank passing its own shard, and ``collectives``, the
  ``all_reduce`` calls it made; ``global_site_error``: the message
  of the same call on the mixture with its global site;
- ``refusal``: the error of an ``AutoRelaxed`` guide on a plate of the batch's size.
"""

import json
import sys

import lightning.pytorch as pl
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.utils.data import DataLoader, TensorDataset

import pyro_concrete as pc
from pyro_concrete.distributed import LightningSVI, sharded_discrete_bound
from pyro_concrete.problems import gaussian_mixture, mixture_data, mixture_posterior

LOCS = (-5.0, 0.0, 5.0)
NUM_DATA, BATCH, STEPS = 64, 32, 300


def indexed_plate(idx: torch.Tensor, x: torch.Tensor) -> pyro.plate:
    """The data plate, indexed by the points' positions ``idx`` in the data set."""
    return pyro.plate("data", NUM_DATA, subsample=idx)


def indexed_mixture(idx: torch.Tensor, x: torch.Tensor) -> None:
    """The mixture of ``problems.gaussian_mixture``, its plate indexed by ``idx``."""
    locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([len(LOCS)]).to_event(1))
    with indexed_plate(idx, x):
        z = pyro.sample("z", dist.OneHotCategorical(x.new_ones(len(LOCS)) / len(LOCS)))
        pyro.sample("x", dist.Normal(pc.select(locs, z), 1.0), obs=x)


def posterior_guide(x: torch.Tensor) -> None:
    """The exact posterior ``p(z_i | x_i, LOCS)`` as a relaxed guide."""
    logits = torch.as_tensor(np.log(mixture_posterior(x.numpy(), np.asarray(LOCS))))
    with pyro.plate("data", len(x)):
        pyro.sample("z", pc.ExpConcrete(2 / 3, logits=logits.float()))


def trainer(world: int, steps: int = STEPS) -> pl.Trainer:
    return pl.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=world,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def main(out: str, world: int) -> None:
    pl.seed_everything(0, verbose=False)
    x = torch.as_tensor(mixture_data(NUM_DATA, LOCS, seed=0)[1])
    idx = torch.arange(NUM_DATA)
    model = pc.relax(indexed_mixture, 0.5)
    guide = pc.AutoRelaxed(model, create_plates=indexed_plate)
    loss_fn = Trace_ELBO()(model, guide)
    loss_fn(idx[:BATCH], x[:BATCH])
    loader = DataLoader(TensorDataset(idx, x), BATCH, shuffle=True, drop_last=True)
    fit = trainer(world)
    fit.fit(LightningSVI(loss_fn, lr=0.1, seed=0), loader)
    rank = fit.global_rank
    locs = guide.median(idx[:BATCH], x[:BATCH])["locs"].numpy()
    report = {"seed": torch.initial_seed(), "probs": guide.probs()["z"].tolist()}
    report["posterior"] = mixture_posterior(x.numpy(), locs).tolist()
    torch.save(guide.state_dict(), f"{out}.rank{rank}.pt")

    given_locs = poutine.block(
        poutine.condition(gaussian_mixture, data={"locs": torch.tensor(LOCS)}), hide=["locs"]
    )
    shard = x[rank::world]
    all_reduce, calls = torch.distributed.all_reduce, []
    torch.distributed.all_reduce = lambda *a, **k: calls.append(None) or all_reduce(*a, **k)
    report["bound"] = sharded_discrete_bound(given_locs, posterior_guide, shard, num_samples=4)
    torch.distributed.all_reduce, report["collectives"] = all_reduce, len(calls)
    try:
        sharded_discrete_bound(gaussian_mixture, posterior_guide, shard)
    except ValueError as error:
        report["global_site_error"] = str(error)

    pyro.clear_param_store()
    unindexed = pc.relax(gaussian_mixture, 0.5)
    loss_fn = Trace_ELBO()(unindexed, pc.AutoRelaxed(unindexed))
    loss_fn(x[:BATCH])
    try:
        trainer(world).fit(LightningSVI(loss_fn), DataLoader(TensorDataset(x), BATCH))
    except ValueError as error:
        report["refusal"] = str(error)
    with open(f"{out}.rank{rank}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
