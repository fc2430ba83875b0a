"""Data-parallel relaxed SVI in Pyro, on PyTorch Lightning's DDP strategy.

The sigmoid belief net of Maddison et al. (2017, Sec. 5.2) on binarized MNIST, written with
discrete ``Bernoulli`` latents, relaxed (prior at temperature 1/2, amortised guide at 2/3)
and trained by ``Trace_ELBO`` in ``--devices`` processes, each on its own shard of every
batch, with DDP averaging the gradients.  At the end each process evaluates the discrete
model's importance-weighted bound on its shard of the test set and one ``all_reduce`` sums
them.  Any ``pyro.infer.ELBO`` subclass with a ``differentiable_loss`` can replace
``Trace_ELBO``: ``--elbo NAME`` looks ``NAME`` up in ``pyro_concrete``, then ``pyro.infer``;
an estimator of the discrete objective trains the discrete model and guide (``--discrete``;
e.g. ``--elbo RebarELBO --discrete``, whose tuned ``eta`` and temperatures DDP averages too).

Run (2 processes on this machine's CPUs, gloo backend)::

    CONCRETE_MNIST=/path/to/binarized_mnist.npz python examples/distributed_pyro.py --devices 2

The same global batch on one process, for comparison: ``--devices 1 --batch-size 128``.
On GPUs: ``--accelerator gpu``.  ``--report PATH`` writes each rank's losses, seed, bound
and trained parameters to ``PATH.rank{r}.json`` / ``.pt``.
"""

import argparse
import json
import time

import lightning.pytorch as pl
import pyro.infer
import torch
from torch.utils.data import DataLoader, TensorDataset

import pyro_concrete as pc
from pyro_concrete.distributed import LightningSVI, sharded_discrete_bound
from pyro_concrete.problems import SigmoidBeliefNet


def main(args: argparse.Namespace) -> None:
    pl.seed_everything(args.seed, verbose=False)  # the same start on every rank
    mnist = pc.load_binarized_mnist()
    train, test = mnist["train"][: args.train_size], mnist["test"][: args.test_size]
    pixel_logits = torch.logit((train.sum(0) + 1) / (len(train) + 2))  # smoothed base rate
    net = SigmoidBeliefNet((args.latents,), hidden=None, pixel_logits=pixel_logits)
    model, guide = pc.relax(net.model, 0.5), pc.relax(net.guide, 2 / 3)
    if args.discrete:  # an estimator of the discrete objective trains the discrete pair
        model, guide = net.model, net.guide
    elbo = getattr(pc, args.elbo, None) or getattr(pyro.infer, args.elbo)
    loss_fn = elbo()(model, guide)
    loss_fn(train[: args.batch_size])  # create the parameters on every rank before DDP
    plan = LightningSVI(loss_fn, net, lr=args.lr, seed=args.seed, num_data=len(train))
    loader = DataLoader(TensorDataset(train), args.batch_size, shuffle=True, drop_last=True)
    trainer = pl.Trainer(
        strategy="ddp",
        accelerator=args.accelerator,
        devices=args.devices,
        max_steps=args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(plan, loader)
    seconds = time.perf_counter() - start
    rank, world = trainer.global_rank, trainer.world_size
    bound = sharded_discrete_bound(net.model, guide, test[rank::world], num_samples=args.samples)
    if trainer.is_global_zero:
        last = sum(plan.losses[-args.window :]) / min(args.window, len(plan.losses))
        print(f"{world} process(es) x batch {args.batch_size}: {args.steps / seconds:.1f} steps/s")
        print(f"training loss, last {args.window} steps: {last / len(train):.2f} nats per image")
        print(f"test bound (K = {args.samples}): {bound / len(test):.2f} nats per image")
    if args.report:
        report = {"rank": rank, "world": world, "seed": torch.initial_seed()}
        report |= {"losses": plan.losses, "bound": bound, "seconds": seconds}
        with open(f"{args.report}.rank{rank}.json", "w") as f:
            json.dump(report, f)
        torch.save(net.state_dict(), f"{args.report}.rank{rank}.pt")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2, help="processes (ranks)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--latents", type=int, default=200)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100, help="K of the test bound")
    parser.add_argument("--window", type=int, default=100, help="steps in the loss average")
    parser.add_argument("--elbo", default="Trace_ELBO", help="an ELBO of pyro_concrete or pyro")
    parser.add_argument("--discrete", action="store_true", help="train the discrete pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default=None, help="path prefix of per-rank results")
    main(parser.parse_args())
