"""The discrete objective of a relaxed model, and temperature schedules.

Training optimises the relaxed ELBO; what the paper reports (Maddison et al. 2017,
Sec. 5) is the bound on the *discrete* model: hard samples from the zero-temperature
limit of the trained guide, scored by the original model.  ``discretize`` takes that
limit, ``discrete_bound`` estimates the importance-weighted bound with it.
"""

import math
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from .distributions import (
    BinaryConcrete,
    Concrete,
    ExpConcrete,
    HardConcrete,
    LogitBinaryConcrete,
)
from .relax import base_of, map_base

__all__ = [
    "DiscretizeMessenger",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
]


def _limit(fn: dist.TorchDistribution) -> dist.TorchDistribution:
    """Zero-temperature limit (Prop. 1c): the discrete distribution ``fn`` relaxes."""
    if isinstance(fn, ExpConcrete | Concrete):
        return dist.OneHotCategorical(logits=fn.logits)
    if isinstance(fn, LogitBinaryConcrete | BinaryConcrete | HardConcrete):
        return dist.Bernoulli(logits=fn.logits)
    return fn


class DiscretizeMessenger(Messenger):
    """Replaces every Concrete-family site by its zero-temperature limit: ``ExpConcrete``,
    ``Concrete`` (and straight-through) by ``OneHotCategorical``; ``LogitBinaryConcrete``,
    ``BinaryConcrete``, ``HardConcrete`` by ``Bernoulli``, with the same logits.  The values
    are in the discrete model's representation: one-hot vectors and ``{0, 1}``."""

    def _pyro_sample(self, msg: dict) -> None:
        if _limit(base_of(msg["fn"])) is not base_of(msg["fn"]):
            msg["fn"] = map_base(msg["fn"], _limit)


def discretize(fn: Callable | None = None) -> Callable | DiscretizeMessenger:
    """Handler form of ``DiscretizeMessenger``: ``discretize(guide)`` or ``with discretize():``."""
    msngr = DiscretizeMessenger()
    return msngr if fn is None else msngr(fn)


def _max_plate_nesting(*traces: poutine.Trace) -> int:
    dims = [
        -frame.dim
        for trace in traces
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized
    ]
    return max(dims, default=0)


def _factor_plates(*traces: poutine.Trace) -> set[str]:
    """Plates enclosing every sample site of every trace: the model and guide factorise
    over their elements, so the bound may be taken element by element."""
    stacks = [
        {frame.name for frame in site["cond_indep_stack"] if frame.vectorized}
        for trace in traces
        for site in trace.nodes.values()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample"
    ]
    return set.intersection(*stacks) if stacks else set()


def _check_vectorised(site: dict, lp_ndim: int, ndim: int) -> None:
    if lp_ndim > ndim:
        raise ValueError(
            f"discrete_bound: site {site['name']!r} has batch dimensions left of its plates "
            f"(log_prob has {lp_ndim} dims, the particle plate sits at dim {-ndim}): the model "
            "and guide must be vectorisable over a leftmost particle plate, as for "
            "Trace_ELBO(vectorize_particles=True). Declare every batch dimension with a plate."
        )


def _log_weights(trace: poutine.Trace, keep: set[int], ndim: int) -> torch.Tensor:
    """Sum of the trace's log densities over every dimension not in ``keep``."""
    total = torch.zeros(())
    for site in trace.nodes.values():
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":
            continue
        lp = site["log_prob"]
        _check_vectorised(site, lp.dim(), ndim)
        lp = lp.reshape((1,) * (ndim - lp.dim()) + lp.shape)
        summed = [d for d in range(-ndim, 0) if d not in keep]
        total = total + (lp.sum(summed, keepdim=True) if summed else lp)
    return total


def _traces(model: Callable, guide: Callable, *args, **kwargs) -> tuple:
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return guide_trace, model_trace


@torch.no_grad()
def discrete_bound(
    model: Callable,
    guide: Callable,
    *args,
    num_samples: int = 1,
    batch_size: int | None = None,
    **kwargs,
) -> float:
    """Importance-weighted bound on ``log p(data)`` of the *discrete* model (Burda et al.
    2016, Eq. 8), with proposals from the zero-temperature limit of the relaxed guide:

    ``L_K = E[log (1/K) sum_k p(x, z_k) / q(z_k)]``, ``z_k ~ discretize(guide)``.

    ``K = 1`` is the discrete ELBO.  ``L_K <= log p(x)`` and ``L_K -> log p(x)`` as ``K``
    grows.  When every site lies in a common plate (a data plate with local latents), the
    bound is taken per element of that plate and summed, which is tighter and the quantity
    reported as "test log-likelihood".  The particles are drawn in a vectorised plate, so
    the model and guide must be vectorisable over an extra leftmost batch dimension.

    :param model: the original discrete model (or any model with the guide's site names).
    :param guide: the trained relaxed guide (its Concrete-family sites are discretised).
    :param num_samples: K.
    :param batch_size: particles per vectorised pass (default: all K at once); lower it to
        bound memory for a large K.
    :return: the estimate, a float (nats).
    """
    discrete_guide = discretize(guide)
    guide_trace, model_trace = _traces(model, discrete_guide, *args, **kwargs)
    nesting = _max_plate_nesting(guide_trace, model_trace)
    factor_plates = _factor_plates(guide_trace, model_trace)
    keep = {-nesting - 1} | {
        frame.dim
        for site in model_trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.name in factor_plates
    }
    batch_size = batch_size or num_samples
    log_w = []
    for start in range(0, num_samples, batch_size):
        size = min(batch_size, num_samples - start)
        with pyro.plate("_discrete_bound_particles", size, dim=-nesting - 1):
            guide_trace, model_trace = _traces(model, discrete_guide, *args, **kwargs)
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        log_w.append(
            _log_weights(model_trace, keep, nesting + 1)
            - _log_weights(guide_trace, keep, nesting + 1)
        )
    bound = torch.cat(log_w, -nesting - 1).logsumexp(-nesting - 1) - math.log(num_samples)
    return bound.sum().item()


def constant_temperature(temperature: float) -> Callable[[int], float]:
    """The schedule ``step -> temperature``."""
    return lambda step: temperature


def exponential_decay(
    t0: float = 1.0, rate: float = 1e-4, t_min: float = 0.5
) -> Callable[[int], float]:
    """Jang et al. (2017, Sec. 4.1): ``step -> max(t_min, t0 exp(-rate step))``."""
    return lambda step: max(t_min, t0 * math.exp(-rate * step))
