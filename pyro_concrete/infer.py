"""The discrete objective of a relaxed model, and temperature schedules.

Training optimises the relaxed ELBO; what Maddison et al. (2017, Sec. 5) report is the
bound on the *discrete* model: hard samples from the zero-temperature limit of the
trained guide, scored by the original model.  ``discretize`` takes that limit,
``discrete_bound`` estimates the importance-weighted bound with it.  A temperature
schedule is a function ``step -> lambda`` that ``relax`` and the relaxed autoguides
evaluate at the ``relax_step`` keyword of each call.
"""

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

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
from .distributions.wrappers import base_of, map_base
from .plates import elements, plate_dims, sample_sites
from .relax import RELAX_STEP

__all__ = [
    "DiscretizeMessenger",
    "JitTrace_ELBO",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
    "zero_temperature_limit",
]


def zero_temperature_limit(fn: dist.TorchDistribution) -> dist.TorchDistribution:
    """Zero-temperature limit (Prop. 1c): the discrete distribution ``fn`` relaxes, or
    ``fn`` itself if it is no Concrete-family distribution."""
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
        base = base_of(msg["fn"])
        if zero_temperature_limit(base) is not base:
            msg["fn"] = map_base(msg["fn"], zero_temperature_limit)


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


def _check_not_subsampled(*traces: poutine.Trace) -> None:
    for trace in traces:
        for site in sample_sites(trace):
            for frame in site["cond_indep_stack"]:
                if frame.full_size is not None and frame.size < frame.full_size:
                    raise ValueError(
                        f"discrete_bound: plate {frame.name!r} subsamples {frame.size} of its "
                        f"{frame.full_size} elements, so the bound would be of a random "
                        "batch, rescaled. Bound the data the call is given: run the model "
                        "without subsample_size (a batch of data as the plate's whole "
                        "size), and sum the bounds of the batches."
                    )


def _log_weights(trace: poutine.Trace, keep: set[int], ndim: int) -> torch.Tensor:
    """Sum of the trace's log densities over every dimension not in ``keep``, as a
    tensor of ``ndim`` dims; ``ValueError`` if a site has more."""
    total = torch.zeros(())
    for site in sample_sites(trace):
        if site["log_prob"].dim() > ndim:
            raise _NotVectorisable(site["name"])
        total = total + elements(site["log_prob"], keep, ndim)
    return total


class _NotVectorisable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"discrete_bound: site {name!r} has batch dimensions that no plate declares; "
            "declare them with a plate (or .to_event for event dimensions)."
        )


def _traces(model: Callable, guide: Callable, *args, **kwargs) -> tuple:
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return guide_trace, model_trace


def _log_weight(model, guide, keep, ndim, particles, *args, **kwargs) -> torch.Tensor:
    """Log importance weights of ``particles`` particles drawn in a vectorised plate at
    dim ``-ndim`` (of one particle, with no plate, if ``particles`` is ``None``): a
    tensor of ``ndim`` dims, the particles leftmost."""
    plate = pyro.plate("_discrete_bound_particles", particles, dim=-ndim) if particles else None
    with plate or contextlib.nullcontext():
        guide_trace, model_trace = _traces(model, guide, *args, **kwargs)
    log_w = _log_weights(model_trace, keep, ndim) - _log_weights(guide_trace, keep, ndim)
    return log_w.expand((particles or 1,) + log_w.shape[1:])


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
    reported as "test log-likelihood".  The particles are drawn in a vectorised plate left
    of the model's plates; a model that does not vectorise over it (a shape error, or a
    site with batch dimensions that no plate declares) is run once per particle instead.
    A plate that subsamples is rejected, since the bound is of the data the call is given.

    :param model: the original discrete model (or any model with the guide's site names).
    :param guide: the trained relaxed guide (its Concrete-family sites are discretised).
    :param num_samples: K.
    :param batch_size: particles per vectorised pass (default: all K at once); lower it to
        bound memory for a large K.
    :return: the estimate, a float (nats).
    """
    discrete_guide = discretize(guide)
    prototype = _traces(model, discrete_guide, *args, **kwargs)
    _check_not_subsampled(*prototype)
    nesting = _max_plate_nesting(*prototype)
    keep = {-nesting - 1} | plate_dims(*prototype)
    batch_size = batch_size or num_samples
    try:
        log_w = [
            _log_weight(model, discrete_guide, keep, nesting + 1, size, *args, **kwargs)
            for size in _chunks(num_samples, batch_size)
        ]
    except (RuntimeError, ValueError):  # not vectorisable over particles: one at a time
        log_w = [
            _log_weight(model, discrete_guide, keep, nesting + 1, None, *args, **kwargs)
            for _ in range(num_samples)
        ]
    bound = torch.cat(log_w).logsumexp(0) - math.log(num_samples)
    return bound.sum().item()


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


class _StepFromLastArgument:
    """Calls ``fn`` with its last positional argument as the ``relax_step`` keyword."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, *args, **kwargs):
        *args, step = args
        return self.fn(*args, **{RELAX_STEP: step}, **kwargs)


class JitTrace_ELBO(pyro.infer.JitTrace_ELBO):
    """Pyro's ``JitTrace_ELBO``, with the ``relax_step`` keyword given to the compiled
    function as a tensor input, so that one trace serves a whole temperature schedule.
    Pyro's JIT takes tensor inputs only from positional arguments and compiles once per
    distinct keyword value; this moves the step to the end of the positional arguments
    and back to its keyword in front of the model and the guide."""

    def loss_and_surrogate_loss(self, model, guide, *args, **kwargs):
        if RELAX_STEP not in kwargs:
            return super().loss_and_surrogate_loss(model, guide, *args, **kwargs)
        step = torch.as_tensor(kwargs.pop(RELAX_STEP))
        cached = getattr(self, "_step_callables", None)
        if cached is None or cached[0] is not model or cached[1] is not guide:
            wrapped = _StepFromLastArgument(model), _StepFromLastArgument(guide)
            cached = self._step_callables = (model, guide, *wrapped)
        return super().loss_and_surrogate_loss(cached[2], cached[3], *args, step, **kwargs)


@dataclass(frozen=True)
class constant_temperature:
    """The schedule ``step -> temperature``."""

    temperature: float | torch.Tensor

    def __call__(self, step: int | torch.Tensor) -> float | torch.Tensor:
        return self.temperature


@dataclass(frozen=True)
class exponential_decay:
    """Jang et al. (2017, Sec. 4.1): ``step -> max(t_min, t0 exp(-rate step))``; a tensor
    ``step`` gives a tensor, so that ``JitTrace_ELBO`` traces a whole schedule once."""

    t0: float = 1.0
    rate: float = 1e-4
    t_min: float = 0.5

    def __call__(self, step: int | torch.Tensor) -> float | torch.Tensor:
        if isinstance(step, torch.Tensor):
            decayed = self.t0 * torch.exp(-self.rate * step.to(torch.get_default_dtype()))
            return decayed.clamp(min=self.t_min)
        return max(self.t_min, self.t0 * math.exp(-self.rate * step))
