"""Run by ``test_numpyro_distributed.py`` as ``python numpyro_sharded_worker.py OUT`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``.  Trains the same relaxed models
with the same keys and batches on a one-device and a two-device mesh and writes
``OUT.npz``: per mesh size ``n``, the sigmoid belief net's losses ``sbn_losses{n}`` and
parameters ``sbn_params{n}``, the jitted update's compilations ``sbn_compiles{n}`` and the
devices holding its outputs ``sbn_devices{n}``; the same for ``AutoRelaxed`` on the Gaussian
mixture (``mixture_*``) and for the discrete sigmoid belief net trained with the estimators
``RebarELBO`` (its ``eta`` and temperature tuned) and ``VimcoELBO`` (``rebar_*``,
``vimco_*``); the held-out bound ``bound{n}`` by ``sharded_discrete_bound`` and
``bound_one_device`` by ``discrete_bound``; ``exact_bound``, the mixture's bound at fixed
locations with the exact posterior as guide (a deterministic number).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO

import numpyro_concrete as nc
from numpyro_concrete.distributed import data_mesh, sharded_discrete_bound
from numpyro_concrete.problems import (
    SigmoidBeliefNet,
    gaussian_mixture,
    mixture_data,
    mixture_posterior,
)

LOCS = (-5.0, 0.0, 5.0)
STEPS, BATCH = 20, 32


def train(svi: SVI, mesh, batches: list) -> dict:
    """``svi`` stepped over ``batches`` with the batch sharded over ``mesh``."""
    rows, everywhere = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    compiles = []

    def step(state, *batch):
        compiles.append(None)  # runs once per compilation
        return svi.update(state, *batch)

    update = jax.jit(step, out_shardings=everywhere)
    state = jax.device_put(svi.init(jax.random.PRNGKey(0), *batches[0]), everywhere)
    losses = []
    for batch in batches:
        state, loss = update(state, *(jax.device_put(b, rows) for b in batch))
        losses.append(loss)
    params = svi.get_params(state)
    return {
        "losses": np.array(losses),
        "params": np.concatenate([np.ravel(params[k]) for k in sorted(params)]),
        "compiles": len(compiles),
        "devices": len(loss.sharding.device_set),
        "state": state,
    }


def posterior_guide(x: jax.Array) -> None:
    """The exact posterior ``p(z_i | x_i, LOCS)`` as a relaxed guide."""
    logits = jnp.log(mixture_posterior(np.asarray(x), np.asarray(LOCS)))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", nc.ExpConcrete(2 / 3, logits=logits.astype(jnp.float32)))


def main(out: str) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.random(64)
    images = (rng.random((STEPS * BATCH + 128, 64)) < pixels).astype(np.float32)
    train_x, test_x = images[: STEPS * BATCH], images[STEPS * BATCH :]
    net = SigmoidBeliefNet((8,), hidden=None, observed=64)
    guide = nc.relax(net.guide, 2 / 3)
    sbn = SVI(nc.relax(net.model, 0.5), guide, numpyro.optim.Adam(1e-2), Trace_ELBO())
    estimators = {
        name: SVI(net.model, loss.tunable(net.guide), numpyro.optim.Adam(1e-2), loss)
        for name, loss in (("rebar", nc.RebarELBO()), ("vimco", nc.VimcoELBO(num_particles=3)))
    }
    x = jnp.asarray(mixture_data(64, LOCS, seed=0)[1])
    relaxed = nc.relax(gaussian_mixture, 0.5)
    results = {}
    for n in (1, 2):
        mesh = data_mesh(jax.devices()[:n])
        # a new guide per run: its first init is the one that matches another first init
        mixture = SVI(relaxed, nc.AutoRelaxed(relaxed), numpyro.optim.Adam(0.05), Trace_ELBO())
        trained = train(sbn, mesh, [(b,) for b in np.split(train_x, STEPS)])
        for key in ("losses", "params", "compiles", "devices"):
            results[f"sbn_{key}{n}"] = trained[key]
        params = sbn.get_params(trained["state"])
        key = jax.random.PRNGKey(1)
        results[f"bound{n}"] = sharded_discrete_bound(
            key, net.model, guide, params, test_x, mesh=mesh, num_samples=5
        )
        if n == 1:
            results["bound_one_device"] = nc.discrete_bound(
                key, net.model, guide, params, test_x, num_samples=5
            )
        trained = train(mixture, mesh, [(x,)] * STEPS)
        for key in ("losses", "params", "compiles", "devices"):
            results[f"mixture_{key}{n}"] = trained[key]
        for name, svi in estimators.items():
            trained = train(svi, mesh, [(b,) for b in np.split(train_x, STEPS)])
            for key in ("losses", "params", "compiles", "devices"):
                results[f"{name}_{key}{n}"] = trained[key]
    given_locs = handlers.block(
        handlers.condition(gaussian_mixture, data={"locs": jnp.asarray(LOCS)}), hide=["locs"]
    )
    results["exact_bound"] = sharded_discrete_bound(
        jax.random.PRNGKey(2), given_locs, posterior_guide, {}, x, mesh=data_mesh(), num_samples=3
    )
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
