"""Data-parallel relaxed SVI in NumPyro, on ``jax.sharding``.

Training is one program over the global batch: the batch is split along its leading axis
over a mesh's data axis (``NamedSharding(mesh, P("data"))``), the SVI state is replicated
(``NamedSharding(mesh, P())``), and ``jax.jit(svi.update, out_shardings=replicated)``
compiles once; XLA runs the model and guide on every device's rows and sums the gradient
over devices.  The noise of the global batch comes from the one key (JAX's partitionable
threefry draws the same numbers whatever the sharding), so ``N`` devices compute the
one-device update, up to the order of float32 sums.  Across hosts, call
``jax.distributed.initialize()`` first; :func:`sharded_discrete_bound` and
``jax.make_array_from_process_local_data`` build the global batch from each process's rows.

Local parameters (``AutoRelaxed``'s ``log_alpha``, one per data point) are ordinary arrays
of the replicated state: every device holds all of them and the update is the one-device
update, so nothing can fall out of step, whether the plate is subsampled or not.

The mesh's axis must propagate shardings automatically (``AxisType.Auto``,
:func:`data_mesh`): under ``jax.make_mesh``'s default, explicit axes, the gradient's
contraction over the sharded batch is ambiguous and JAX refuses it.
"""

from collections.abc import Callable, Sequence

import jax
from jax import Array
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .infer import discrete_bound

__all__ = ["data_mesh", "sharded_discrete_bound"]


def data_mesh(devices: Sequence[jax.Device] | None = None, axis: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of every process) whose axis
    ``axis`` propagates shardings automatically, so a model needs no sharding annotations."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError(f"data_mesh: devices must name at least one device, got {devices!r}.")
    return jax.make_mesh((len(devices),), (axis,), axis_types=(AxisType.Auto,), devices=devices)


def sharded_discrete_bound(
    rng_key: Array,
    model: Callable,
    guide: Callable,
    params: dict,
    *args,
    mesh: Mesh,
    axis: str = "data",
    num_samples: int = 1,
    batch_size: int | None = None,
    **kwargs,
) -> float:
    """:func:`~numpyro_concrete.discrete_bound` of a data set whose rows are split over the
    devices of ``mesh`` along ``axis``: each process passes its own rows as ``args`` (on
    one host, all of them) and every positional argument is split along its leading axis
    (keyword arguments are passed whole).  Each device evaluates the model and guide on its
    rows, and the per-point bounds are summed across devices: the same value as
    ``discrete_bound`` of the whole data set on one device with the same key (for a model
    with global sites too: the computation is one program over the whole data set).

    :param rng_key: a PRNG key, the same on every process.
    :param mesh: the devices (:func:`data_mesh`).
    :param axis: the mesh axis that splits the rows.
    :return: the bound of the whole data set (nats).
    """
    rows = NamedSharding(mesh, PartitionSpec(axis))
    sharded = [jax.make_array_from_process_local_data(rows, a) for a in args]
    return discrete_bound(
        rng_key,
        model,
        guide,
        params,
        *sharded,
        num_samples=num_samples,
        batch_size=batch_size,
        **kwargs,
    )
