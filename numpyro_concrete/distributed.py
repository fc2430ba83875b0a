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
import numpy as np
from jax import Array
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec
from numpyro import handlers

from .infer import discrete_bound, discretize

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
    with global sites too: the computation is one program over the whole data set).  Rows
    that do not split evenly over a process's devices are padded and the padding masked
    out, for a model whose sample sites all lie in the data plate; with a global site, a
    ``ValueError`` says how many rows to pass.

    :param rng_key: a PRNG key, the same on every process.
    :param mesh: the devices (:func:`data_mesh`).
    :param axis: the mesh axis that splits the rows.
    :return: the bound of the whole data set (nats).
    """
    rows = NamedSharding(mesh, PartitionSpec(axis))
    model, guide, args = _padded(model, guide, params, args, kwargs, mesh, axis)
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


def _data_plate_dim(model: Callable, guide: Callable, params: dict, args, kwargs) -> int | None:
    """The dim of a plate of ``len(args[0])`` elements that encloses every sample site of
    the discretised guide and the model replayed on it, or None."""
    guide = handlers.seed(handlers.substitute(discretize(guide), data=params), 0)
    guide_trace = handlers.trace(guide).get_trace(*args, **kwargs)
    model = handlers.seed(handlers.substitute(model, data=params), 0)
    model_trace = handlers.trace(handlers.replay(model, guide_trace)).get_trace(*args, **kwargs)
    stacks = [
        {(f.name, f.dim, f.size) for f in site["cond_indep_stack"]}
        for trace in (guide_trace, model_trace)
        for site in trace.values()
        if site["type"] == "sample"
    ]
    common = set.intersection(*stacks) if stacks else set()
    return next((dim for _, dim, size in common if size == len(args[0])), None)


def _padded(
    model: Callable, guide: Callable, params: dict, args: tuple, kwargs: dict, mesh: Mesh, axis: str
) -> tuple[Callable, Callable, list]:
    """``(model, guide, args)`` with this process's rows padded to a multiple of its devices
    on ``axis`` (copies of the last row) and the padding masked out of every site: a
    padded row's weights are 1, its bound 0, and the real rows draw the noise they draw
    unpadded (JAX's threefry numbers a draw's elements along the leading axis).  Needs
    every sample site in the data plate; a model with a global site raises
    ``ValueError``."""
    local = [np.asarray(a) for a in args]
    devices = mesh.local_mesh.shape[axis]
    rows = {len(a) for a in local}
    if len(rows) != 1:
        raise ValueError(
            "sharded_discrete_bound: every positional argument is split along its leading "
            f"axis and must have the same number of rows, got {sorted(rows)}."
        )
    (n,) = rows
    pad = -n % devices
    if pad == 0:
        return model, guide, local
    padded = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) for a in local]
    dim = _data_plate_dim(model, guide, params, padded, kwargs)
    if dim is None:
        raise ValueError(
            f"sharded_discrete_bound: the {n} rows of this process do not split evenly over "
            f"its {devices} devices of mesh axis {axis!r}, and padding them needs every "
            "sample site in one plate over the rows (local latent variables); this model "
            f"has a site outside it (a global variable). Pass a multiple of {devices} rows "
            f"(e.g. the first {n - n % devices}), or evaluate on one device with "
            "discrete_bound."
        )
    mask = (np.arange(n + pad) < n).reshape((n + pad,) + (1,) * (-dim - 1))
    mask = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec(axis)), mask)
    return handlers.mask(model, mask=mask), handlers.mask(guide, mask=mask), padded
