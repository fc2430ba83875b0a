"""Run by ``test_numpyro_distributed.py`` as ``python numpyro_padding_worker.py`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``.  Prints one JSON object: the
mixture's bound at fixed locations on 63 rows (odd: they do not split over the two
devices), with a relaxed guide of each point's distances to the locations, by
``sharded_discrete_bound`` on two devices (``sharded``) and by ``discrete_bound`` on one
(``one_device``); and the error that a model with a global site on those rows raises
(``global_error``).
"""

import json

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

import numpyro_concrete as nc
from numpyro_concrete.distributed import data_mesh, sharded_discrete_bound
from numpyro_concrete.problems import gaussian_mixture, mixture_data
from tests.distributed.numpyro_sharded_worker import LOCS


def distance_guide(x: jax.Array) -> None:
    logits = -0.3 * (x[:, None] - jnp.asarray(LOCS)) ** 2  # not the posterior: noisy weights
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", nc.ExpConcrete(2 / 3, logits=logits))


def with_global(x: jax.Array) -> None:
    g = numpyro.sample("g", dist.Bernoulli(0.5))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.Normal(g, 1.0), obs=x)


def global_guide(x: jax.Array) -> None:
    numpyro.sample("g", dist.Bernoulli(0.3))


def main() -> None:
    x = jnp.asarray(mixture_data(63, LOCS, seed=0)[1])
    given_locs = handlers.block(
        handlers.condition(gaussian_mixture, data={"locs": jnp.asarray(LOCS)}), hide=["locs"]
    )
    key, mesh = jax.random.PRNGKey(2), data_mesh()
    out = {
        "devices": len(mesh.devices.ravel()),
        "sharded": sharded_discrete_bound(
            key, given_locs, distance_guide, {}, x, mesh=mesh, num_samples=3
        ),
        "one_device": nc.discrete_bound(key, given_locs, distance_guide, {}, x, num_samples=3),
    }
    try:
        sharded_discrete_bound(key, with_global, global_guide, {}, x, mesh=mesh)
    except ValueError as error:
        out["global_error"] = str(error)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
