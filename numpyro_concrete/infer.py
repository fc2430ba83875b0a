"""The discrete objective of a relaxed model, and temperature schedules.

Training optimises the relaxed ELBO; what the paper reports (Maddison et al. 2017,
Sec. 5) is the bound on the *discrete* model: hard samples from the zero-temperature
limit of the trained guide, scored by the original model.  ``discretize`` takes that
limit, ``discrete_bound`` estimates the importance-weighted bound with it.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.primitives import Messenger

from .distributions import (
    BinaryConcrete,
    Concrete,
    ExpConcrete,
    HardConcrete,
    LogitBinaryConcrete,
    OneHotCategorical,
)
from .relax import base_of, map_base

__all__ = [
    "DiscretizeMessenger",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
]


def _limit(fn: dist.Distribution) -> dist.Distribution:
    """Zero-temperature limit (Prop. 1c): the discrete distribution ``fn`` relaxes."""
    if isinstance(fn, ExpConcrete | Concrete):
        return OneHotCategorical(logits=fn.logits)
    if isinstance(fn, LogitBinaryConcrete | BinaryConcrete | HardConcrete):
        return dist.BernoulliLogits(fn.logits)
    return fn


class DiscretizeMessenger(Messenger):
    """Replaces every Concrete-family site by its zero-temperature limit: ``ExpConcrete``,
    ``Concrete`` (and straight-through) by ``OneHotCategorical``; ``LogitBinaryConcrete``,
    ``BinaryConcrete``, ``HardConcrete`` by ``Bernoulli``, with the same logits.  The values
    are in the discrete model's representation: one-hot vectors and ``{0, 1}``."""

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and _limit(base_of(msg["fn"])) is not base_of(msg["fn"]):
            msg["fn"] = map_base(msg["fn"], _limit)


def discretize(fn: Callable | None = None) -> DiscretizeMessenger:
    """Handler form of ``DiscretizeMessenger``: ``discretize(guide)`` or ``with discretize():``."""
    return DiscretizeMessenger(fn)


def _sample_sites(trace: dict) -> list[dict]:
    return [site for site in trace.values() if site["type"] == "sample"]


def _max_plate_nesting(*traces: dict) -> int:
    dims = [-frame.dim for t in traces for s in _sample_sites(t) for frame in s["cond_indep_stack"]]
    return max(dims, default=0)


def _factor_plates(*traces: dict) -> set[str]:
    """Plates enclosing every sample site of every trace: the model and guide factorise
    over their elements, so the bound may be taken element by element."""
    stacks = [
        {frame.name for frame in site["cond_indep_stack"]}
        for trace in traces
        for site in _sample_sites(trace)
    ]
    return set.intersection(*stacks) if stacks else set()


def _site_log_prob(site: dict) -> Array:
    fn, value = site["fn"], site["value"]
    lp = fn.log_prob(value, site["intermediates"]) if site["intermediates"] else fn.log_prob(value)
    return lp if site["scale"] is None else site["scale"] * lp


def _check_vectorised(site: dict, lp_ndim: int, ndim: int) -> None:
    if lp_ndim > ndim:
        raise ValueError(
            f"discrete_bound: site {site['name']!r} has batch dimensions left of its plates "
            f"(log_prob has {lp_ndim} dims, the particle plate sits at dim {-ndim}): the model "
            "and guide must be vectorisable over a leftmost particle plate, as for "
            "Trace_ELBO(vectorize_particles=True). Declare every batch dimension with a plate."
        )


def _log_weights(trace: dict, keep: set[int], ndim: int) -> Array:
    """Sum of the trace's log densities over every dimension not in ``keep``."""
    total = jnp.zeros(())
    for site in _sample_sites(trace):
        lp = _site_log_prob(site)
        _check_vectorised(site, lp.ndim, ndim)
        lp = lp.reshape((1,) * (ndim - lp.ndim) + lp.shape)
        summed = tuple(d for d in range(-ndim, 0) if d not in keep)
        total = total + lp.sum(summed, keepdims=True)
    return total


def discrete_bound(
    rng_key: Array,
    model: Callable,
    guide: Callable,
    params: dict,
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

    :param rng_key: a PRNG key.
    :param model: the original discrete model (or any model with the guide's site names).
    :param guide: the trained relaxed guide (its Concrete-family sites are discretised).
    :param params: the trained parameters (``svi.get_params(state)``).
    :param num_samples: K.
    :param batch_size: particles per vectorised pass (default: all K at once); lower it to
        bound memory for a large K.
    :return: the estimate, a float (nats).
    """
    discrete_guide = handlers.substitute(discretize(guide), data=params)
    model = handlers.substitute(model, data=params)

    def traces(key: Array) -> tuple[dict, dict]:
        guide_trace = handlers.trace(handlers.seed(discrete_guide, key)).get_trace(*args, **kwargs)
        replayed = handlers.replay(handlers.seed(model, key), trace=guide_trace)
        return guide_trace, handlers.trace(replayed).get_trace(*args, **kwargs)

    rng_key, key = jax.random.split(rng_key)
    guide_trace, model_trace = traces(key)
    nesting = _max_plate_nesting(guide_trace, model_trace)
    factor_plates = _factor_plates(guide_trace, model_trace)
    keep = {-nesting - 1} | {
        frame.dim
        for site in _sample_sites(model_trace)
        for frame in site["cond_indep_stack"]
        if frame.name in factor_plates
    }
    batch_size = batch_size or num_samples
    log_w = []
    for start in range(0, num_samples, batch_size):
        rng_key, key = jax.random.split(rng_key)
        with numpyro.plate(
            "_discrete_bound_particles", min(batch_size, num_samples - start), dim=-nesting - 1
        ):
            guide_trace, model_trace = traces(key)
        log_w.append(
            _log_weights(model_trace, keep, nesting + 1)
            - _log_weights(guide_trace, keep, nesting + 1)
        )
    log_w = jnp.concatenate(log_w, -nesting - 1)
    bound = jax.nn.logsumexp(log_w, -nesting - 1) - math.log(num_samples)
    return float(bound.sum())


def constant_temperature(temperature: ArrayLike) -> Callable[[ArrayLike], ArrayLike]:
    """The schedule ``step -> temperature``."""
    return lambda step: temperature


def exponential_decay(
    t0: float = 1.0, rate: float = 1e-4, t_min: float = 0.5
) -> Callable[[ArrayLike], Array]:
    """Jang et al. (2017, Sec. 4.1): ``step -> max(t_min, t0 exp(-rate step))``, traceable
    under ``jit`` (``step`` may be a traced integer)."""
    return lambda step: jnp.maximum(t_min, t0 * jnp.exp(-rate * jnp.asarray(step)))
