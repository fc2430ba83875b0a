"""Run by ``test_pyro_distributed.py`` as ``python pyro_estimator_ddp_worker.py OUT WORLD
ELBO``; Lightning's DDP strategy starts the other ranks by running it again.  Trains a small
discrete sigmoid belief net with the estimator ``pyro_concrete.<ELBO>`` under
``LightningSVI`` and writes, per rank, ``OUT.rank{r}.json`` with ``seed`` (torch's seed
after training), ``losses`` and ``tuned_before`` / ``tuned`` (the estimator's tuned
quantities, by name, before and after training), and the net's parameters to
``OUT.rank{r}.pt``.
"""

import json
import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import pyro_concrete as pc
from pyro_concrete.distributed import LightningSVI
from pyro_concrete.problems import SigmoidBeliefNet
from tests.distributed.pyro_ddp_worker import trainer as ddp_trainer

NUM_DATA, BATCH, STEPS, PIXELS = 64, 16, 20, 12


def tuned_values(elbo) -> dict[str, list]:
    return {k: v.detach().reshape(-1).tolist() for k, v in elbo.tuned.named_parameters()}


def main(out: str, world: int, elbo_name: str) -> None:
    pl.seed_everything(0, verbose=False)
    x = torch.bernoulli(torch.rand(PIXELS).expand(NUM_DATA, PIXELS))
    net = SigmoidBeliefNet((4,), hidden=None, observed=PIXELS)
    elbo = getattr(pc, elbo_name)()
    loss_fn = elbo(net.model, net.guide)
    loss_fn(x[:BATCH])  # creates the net's and the estimator's parameters on every rank
    before = tuned_values(elbo)
    plan = LightningSVI(loss_fn, net, lr=0.05, seed=0, num_data=NUM_DATA)
    trainer = ddp_trainer(world, STEPS)
    trainer.fit(plan, DataLoader(TensorDataset(x), BATCH, shuffle=True, drop_last=True))
    rank = trainer.global_rank
    report = {"seed": torch.initial_seed(), "losses": plan.losses}
    report |= {"tuned_before": before, "tuned": tuned_values(elbo)}
    torch.save(net.state_dict(), f"{out}.rank{rank}.pt")
    with open(f"{out}.rank{rank}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
