"""The plates of a pass of model and guide: those that enclose every sample site (the data
plate of an amortised model, the particle plate), over whose elements model and guide
factorise, so that an objective is a sum of independent terms, one per element (a data
point); each log density summed to those elements; and the scale of each element
(subsampling's ``N / B``, ``poutine.scale``).  The estimators, NVIL and ``discrete_bound``
take their per-element sums from here."""

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = [
    "coordinates",
    "element_scale",
    "elements",
    "factor_dims",
    "plate_dims",
    "sample_sites",
    "subsample_scale",
]


def sample_sites(trace: poutine.Trace) -> list[dict]:
    """The trace's sample sites (observed ones included), but for the plates' subsample
    sites."""
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]


def _stacks(traces: tuple) -> list[set[tuple[str, int]]]:
    return [
        {(f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized}
        for trace in traces
        for site in sample_sites(trace)
    ]


def plate_dims(*traces: poutine.Trace) -> set[int]:
    """The dims of the plates enclosing every sample site of ``traces`` (the same plate, by
    name and dim, in each): model and guide factorise over their elements."""
    stacks = _stacks(traces)
    return {dim for _, dim in set.intersection(*stacks)} if stacks else set()


def factor_dims(*traces: poutine.Trace) -> tuple[set[int], int]:
    """``(dims, ndim)``: :func:`plate_dims`, and the number of batch dims the log densities
    of ``traces`` (computed) are laid out on."""
    frames = [-d for stack in _stacks(traces) for _, d in stack]
    log_probs = [site["log_prob"].dim() for trace in traces for site in sample_sites(trace)]
    return plate_dims(*traces), max([0, *frames, *log_probs])


def subsample_scale(model_trace: poutine.Trace, dims: set[int], estimator: str) -> float:
    """``N / B``: the subsampling scale of the factor plates (dims ``dims``), for an
    objective taken per element and then scaled (VIMCO's bound, as NumPyro's
    ``RenyiELBO``).  A subsampled plate that does not enclose every site raises
    ``ValueError``: such a bound does not split over it."""
    frames = {f for site in sample_sites(model_trace) for f in site["cond_indep_stack"]}
    scale = 1.0
    for frame in frames:
        size = frame.size if frame.full_size is None else frame.full_size
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


def element_scale(
    traces: tuple[poutine.Trace, poutine.Trace], dims: set[int], ndim: int, estimator: str
) -> torch.Tensor:
    """The scale of each element of the factor plates (dims ``dims``) of ``traces``,
    ``(model_trace, guide_trace)``, laid out on ``ndim`` dims: what subsampling and
    ``poutine.scale`` multiply every log density of the element by (``N / B``,
    ``LightningSVI``'s ``num_data / batch``, a scale tensor over the data plate), for an
    objective taken per element from its unscaled densities and then scaled (VIMCO's
    bound).  A subsampled plate that does not enclose every site, or a scale that differs
    between the sites of one element or within it (a scale on the model only, or on some
    sites only), raises ``ValueError``: a ``K``-sample bound ``log (1/K) sum_k w_k`` has
    no per-element scale then."""
    subsample_scale(traces[0], dims, estimator)  # its error names a plate that cannot split
    summed = [d for d in range(-ndim, 0) if d not in dims]
    first, out = None, None
    for role, trace in zip(("model", "guide"), traces, strict=True):
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            scale = torch.as_tensor(site["scale"], dtype=site["log_prob"].dtype)
            shape = torch.broadcast_shapes(scale.shape, site["log_prob"].shape)
            scale = scale.expand(shape).reshape((1,) * (ndim - len(shape)) + shape)
            low = scale.amin(summed, keepdim=True) if summed else scale
            high = scale.amax(summed, keepdim=True) if summed else scale
            if out is None:
                first, out = f"{role} site {name!r}", high
            if not (torch.allclose(low, high) and torch.allclose(high, out)):
                raise ValueError(_scale_message(estimator, f"{role} site {name!r}", first))
    return out if out is not None else torch.ones((1,) * ndim)


def _scale_message(estimator: str, site: str, first: str) -> str:
    return (
        f"{estimator}: {site} is scaled differently from {first} on "
        "the same element of the plates that enclose every site (a poutine.scale on the "
        "model only, or on some sites only, or one that varies within a data point). The "
        "bound is taken per element from its unscaled weights and then multiplied by the "
        "element's scale, which must be one number for all of the element's sites, in the "
        "model and the guide. Apply poutine.scale to both the model and the guide (as "
        "LightningSVI does), with one value per data point."
    )


def elements(log_prob: torch.Tensor, dims: set[int], ndim: int) -> torch.Tensor:
    """``log_prob`` laid out on ``ndim`` dims, summed over every dim not in ``dims``."""
    if log_prob.dim() < ndim:
        log_prob = log_prob.reshape((1,) * (ndim - log_prob.dim()) + log_prob.shape)
    summed = [d for d in range(-ndim, 0) if d not in dims]
    return log_prob.sum(summed, keepdim=True) if summed else log_prob


def coordinates(x: torch.Tensor, event_dim: int, dims: set[int], ndim: int) -> torch.Tensor:
    """A site's tensor ``x`` (``event_dim`` event dims) laid out per element: the ``ndim``
    batch dims of :func:`elements` (of size 1 but for ``dims``), then one dim of the
    element's coordinates (its batch dims outside ``dims`` and its event dims, flattened),
    so that a sum over the last dim is the per-element sum of :func:`elements`."""
    batch = x.shape[: x.dim() - event_dim]
    x = x.reshape((1,) * (ndim - len(batch)) + tuple(batch) + (-1,))
    kept = [i for i in range(ndim) if i - ndim in dims]
    moved = [i for i in range(ndim) if i - ndim not in dims]
    shape = [x.shape[i] if i - ndim in dims else 1 for i in range(ndim)]
    return x.permute(kept + moved + [ndim]).reshape(shape + [-1])
