"""The plates of a pass of model and guide: those that enclose every sample site (the data
plate of an amortised model, the particle plate), over whose elements model and guide
factorise, so that an objective is a sum of independent terms, one per element (a data
point); each log density summed to those elements; and the scale of each element
(subsampling's ``N / B``, ``handlers.scale``).  The estimators, NVIL and ``discrete_bound``
take their per-element sums from here."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "coordinates",
    "element_scale",
    "elements",
    "factor_dims",
    "plate_dims",
    "sample_sites",
    "subsample_scale",
]


def sample_sites(tr: dict) -> list[dict]:
    """The trace's sample sites, observed ones included (a plate's subsample is a site of
    its own type in NumPyro)."""
    return [site for site in tr.values() if site["type"] == "sample"]


def _stacks(traces: tuple) -> list[set[tuple[str, int]]]:
    return [
        {(f.name, f.dim) for f in site["cond_indep_stack"]}
        for trace in traces
        for site in sample_sites(trace)
    ]


def plate_dims(*traces: dict) -> set[int]:
    """The dims of the plates enclosing every sample site of ``traces`` (the same plate, by
    name and dim, in each): model and guide factorise over their elements."""
    stacks = _stacks(traces)
    return {dim for _, dim in set.intersection(*stacks)} if stacks else set()


def factor_dims(*traces: dict) -> tuple[set[int], int]:
    """``(dims, ndim)``: :func:`plate_dims`, and the number of batch dims the log densities
    of ``traces`` (computed) are laid out on."""
    frames = [-d for stack in _stacks(traces) for _, d in stack]
    log_probs = [site["log_prob"].ndim for trace in traces for site in sample_sites(trace)]
    return plate_dims(*traces), max([0, *frames, *log_probs])


def subsample_scale(model_trace: dict, dims: set[int], estimator: str) -> float:
    """``N / B``: the subsampling scale of the factor plates (dims ``dims``), for an
    objective taken per element and then scaled (VIMCO's bound, as NumPyro's
    ``RenyiELBO``).  A subsampled plate that does not enclose every site raises
    ``ValueError``: such a bound does not split over it."""
    frames = {
        f
        for site in model_trace.values()
        if site["type"] == "sample"
        for f in site["cond_indep_stack"]
    }
    scale = 1.0
    for frame in frames:
        size = model_trace[frame.name]["args"][0]
        if size > frame.size:
            if frame.dim not in dims:
                raise ValueError(_subsample_message(estimator, frame.name))
            scale *= size / frame.size
    return scale


def _subsample_message(estimator: str, plate: str) -> str:
    return (
        f"{estimator}: plate {plate!r} is subsampled but does not enclose every sample "
        "site; the multi-sample bound is taken per element of the plates that enclose "
        "every site and does not split over others. Subsample only a plate that encloses "
        "the whole model (the data plate), or do not subsample."
    )


def element_scale(traces: tuple[dict, dict], dims: set[int], ndim: int, estimator: str) -> Array:
    """The scale of each element of the factor plates (dims ``dims``) of ``traces``,
    ``(model_trace, guide_trace)``, laid out on ``ndim`` dims: what subsampling and
    ``handlers.scale`` multiply every log density of the element by (``N / B``, a scale
    array over the data plate), for an objective taken per element from its unscaled
    densities and then scaled (VIMCO's bound).  A subsampled plate that does not enclose
    every site, or a scale that differs between the sites of one element or within it (a
    scale on the model only, or on some sites only), raises ``ValueError``: a ``K``-sample
    bound ``log (1/K) sum_k w_k`` has no per-element scale then.  The check reads concrete
    scales (Python numbers, arrays made outside ``jax.jit``); a scale computed under
    ``jit`` is a tracer, and the first site's is taken unchecked."""
    subsample_scale(traces[0], dims, estimator)  # its error names a plate that cannot split
    summed = tuple(d for d in range(-ndim, 0) if d not in dims)
    first, out = None, None
    for role, tr in zip(("model", "guide"), traces, strict=True):
        for name, site in tr.items():
            if site["type"] != "sample":
                continue
            scale = 1.0 if site["scale"] is None else site["scale"]
            traced = isinstance(scale, jax.core.Tracer)
            xp = jnp if traced else np  # numpy keeps a concrete scale concrete under jit
            shape = jnp.broadcast_shapes(jnp.shape(scale), jnp.shape(site["log_prob"]))
            scale = xp.broadcast_to(scale, shape).reshape((1,) * (ndim - len(shape)) + shape)
            high = scale.max(summed, keepdims=True) if summed else scale
            if out is None:
                first, out = f"{role} site {name!r}", high
            if traced or isinstance(out, jax.core.Tracer):
                continue
            low = scale.min(summed, keepdims=True) if summed else scale
            if not (np.allclose(low, high) and np.allclose(high, out)):
                raise ValueError(_scale_message(estimator, f"{role} site {name!r}", first))
    return jnp.ones((1,) * ndim) if out is None else jnp.asarray(out)


def _scale_message(estimator: str, site: str, first: str) -> str:
    return (
        f"{estimator}: {site} is scaled differently from {first} on "
        "the same element of the plates that enclose every site (a handlers.scale on the "
        "model only, or on some sites only, or one that varies within a data point). The "
        "bound is taken per element from its unscaled weights and then multiplied by the "
        "element's scale, which must be one number for all of the element's sites, in the "
        "model and the guide. Apply handlers.scale to both the model and the guide, with "
        "one value per data point."
    )


def elements(log_prob: Array, dims: set[int], ndim: int) -> Array:
    """``log_prob`` laid out on ``ndim`` dims, summed over every dim not in ``dims``."""
    log_prob = jnp.reshape(log_prob, (1,) * (ndim - jnp.ndim(log_prob)) + jnp.shape(log_prob))
    summed = tuple(d for d in range(-ndim, 0) if d not in dims)
    return log_prob.sum(summed, keepdims=True) if summed else log_prob


def coordinates(x: Array, event_dim: int, dims: set[int], ndim: int) -> Array:
    """A site's array ``x`` (``event_dim`` event dims) laid out per element: the ``ndim``
    batch dims of :func:`elements` (of size 1 but for ``dims``), then one dim of the
    element's coordinates (its batch dims outside ``dims`` and its event dims, flattened),
    so that a sum over the last dim is the per-element sum of :func:`elements`."""
    batch = jnp.shape(x)[: jnp.ndim(x) - event_dim]
    x = jnp.reshape(x, (1,) * (ndim - len(batch)) + tuple(batch) + (-1,))
    kept = [i for i in range(ndim) if i - ndim in dims]
    moved = [i for i in range(ndim) if i - ndim not in dims]
    shape = [x.shape[i] if i - ndim in dims else 1 for i in range(ndim)]
    return jnp.reshape(jnp.transpose(x, kept + moved + [ndim]), shape + [-1])
