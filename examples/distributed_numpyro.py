"""Data-parallel relaxed SVI in NumPyro, with the batch sharded over a device mesh.

The sigmoid belief net of Maddison et al. (2017, Sec. 5.2) on binarized MNIST, written with
discrete ``Bernoulli`` latents, relaxed (prior at temperature 1/2, amortised guide at 2/3)
and trained by ``Trace_ELBO``: each batch is split over the devices' ``"data"`` axis, the
SVI state is replicated, and the jitted ``svi.update`` compiles once and runs on every
device.  The discrete model's importance-weighted bound is evaluated on the test set split
the same way.  ``--devices 1`` computes the same numbers on one device.

Run (2 CPU devices on this machine)::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
    CONCRETE_MNIST=/path/to/binarized_mnist.npz python examples/distributed_numpyro.py

On GPUs the devices are the GPUs (no flag).  Across hosts, call
``jax.distributed.initialize()`` first and feed each process its own rows
(``jax.make_array_from_process_local_data``).
"""

import argparse
import time

import jax
import numpy as np
import numpyro
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro.infer import SVI, Trace_ELBO

import numpyro_concrete as nc
from numpyro_concrete.distributed import data_mesh, sharded_discrete_bound
from numpyro_concrete.problems import SigmoidBeliefNet


def main(args: argparse.Namespace) -> None:
    mnist = {k: np.asarray(v) for k, v in nc.load_binarized_mnist().items()}
    train, test = mnist["train"][: args.train_size], mnist["test"][: args.test_size]
    pixel_logits = jax.scipy.special.logit((train.sum(0) + 1) / (len(train) + 2))  # smoothed
    net = SigmoidBeliefNet((args.latents,), hidden=None, pixel_logits=pixel_logits)
    guide = nc.relax(net.guide, 2 / 3)

    mesh = data_mesh(jax.devices()[: args.devices])  # one "data" axis over the devices
    rows, everywhere = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    svi = SVI(nc.relax(net.model, 0.5), guide, numpyro.optim.Adam(args.lr), Trace_ELBO())
    state = jax.device_put(
        svi.init(jax.random.PRNGKey(args.seed), train[: args.batch_size]), everywhere
    )
    update = jax.jit(svi.update, out_shardings=everywhere)  # compiled once
    rng, per_epoch, losses = np.random.default_rng(args.seed), len(train) // args.batch_size, []
    for step in range(args.steps):
        if step == 1:
            start = time.perf_counter()  # after compiling
        if step % per_epoch == 0:
            order = rng.permutation(len(train))[: per_epoch * args.batch_size].reshape(
                per_epoch, -1
            )
        batch = jax.device_put(train[order[step % per_epoch]], rows)
        state, loss = update(state, batch)
        losses.append(loss)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    params = svi.get_params(state)
    key = jax.random.PRNGKey(args.seed + 1)
    bound = sharded_discrete_bound(
        key, net.model, guide, params, test, mesh=mesh, num_samples=args.samples
    )
    last = np.mean(losses[-args.window :]) / args.batch_size
    print(f"{len(mesh.devices)} device(s), global batch {args.batch_size}, {jax.devices()[0]}")
    print(f"{(args.steps - 1) / seconds:.1f} steps/s after compiling")
    print(f"training loss, last {args.window} steps: {last:.2f} nats per image")
    print(f"test bound (K = {args.samples}): {bound / len(test):.2f} nats per image")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=None, help="default: all")
    parser.add_argument("--batch-size", type=int, default=128, help="global, over devices")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--latents", type=int, default=200)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100, help="K of the test bound")
    parser.add_argument("--window", type=int, default=100, help="steps in the loss average")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.devices is not None and not 1 <= args.devices <= jax.device_count():
        parser.error(
            f"--devices {args.devices}: this process sees {jax.device_count()} device(s) "
            f"({jax.devices()[0].platform}); on a CPU, set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={max(args.devices, 1)} "
            "before starting Python for that many host devices."
        )
    main(args)
