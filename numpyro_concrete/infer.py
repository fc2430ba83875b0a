"""The discrete objective of a relaxed model, and temperature schedules.

Training optimises the relaxed ELBO; what Maddison et al. (2017, Sec. 5) report is the
bound on the *discrete* model: hard samples from the zero-temperature limit of the
trained guide, scored by the original model.  ``discretize`` takes that limit,
``discrete_bound`` estimates the importance-weighted bound with it.  A temperature
schedule is a function ``step -> lambda`` that ``relax`` and the relaxed autoguides
evaluate at the ``relax_step`` keyword of each call.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
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
from .distributions.wrappers import base_of, map_base
from .plates import plate_dims, sample_sites

__all__ = [
    "DiscretizeMessenger",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
    "zero_temperature_limit",
]


def zero_temperature_limit(fn: dist.Distribution) -> dist.Distribution:
    """Zero-temperature limit (Prop. 1c): the discrete distribution ``fn`` relaxes, or
    ``fn`` itself if it is no Concrete-family distribution."""
    if isinstance(fn, ExpConcrete | Concrete):
        return OneHotCategorical(logits=fn.logits)
    if isinstance(fn, LogitBinaryConcrete | BinaryConcrete | HardConcrete):
        return dist.BernoulliLogits(fn.logits)
    return fn


class DiscretizeMessenger(Messenger):
    """Replaces every Concrete-family site by its zero-temperature limit: ``ExpConcrete``,
    ``Concrete`` (and straight-through) by ``OneHotCategorical``; ``LogitBinaryConcrete``,
    ``BinaryConcrete``, ``HardConcrete`` by ``Bernoulli``, with the same logits.  The values
    are in the discrete model's representation: one-hot vectors and ``{0, 1}`` integers."""

    def process_message(self, msg: dict) -> None:
        if msg["type"] != "sample":
            return
        base = base_of(msg["fn"])
        if zero_temperature_limit(base) is not base:
            msg["fn"] = map_base(msg["fn"], zero_temperature_limit)


def discretize(fn: Callable | None = None) -> DiscretizeMessenger:
    """Handler form of ``DiscretizeMessenger``: ``discretize(guide)`` or ``with discretize():``."""
    return DiscretizeMessenger(fn)


def _check_not_subsampled(*traces: dict) -> None:
    for trace in traces:
        for name, site in trace.items():
            if site["type"] == "plate" and jnp.shape(site["value"])[0] < site["args"][0]:
                raise ValueError(
                    f"discrete_bound: plate {name!r} subsamples {jnp.shape(site['value'])[0]} "
                    f"of its {site['args'][0]} elements, so the bound would be of a random "
                    "batch, rescaled. Bound the data the call is given: run the model "
                    "without subsample_size (a batch of data as the plate's whole size), "
                    "and sum the bounds of the batches."
                )


def _site_log_prob(site: dict) -> Array:
    fn, value = site["fn"], site["value"]
    lp = fn.log_prob(value, site["intermediates"]) if site["intermediates"] else fn.log_prob(value)
    return lp if site["scale"] is None else site["scale"] * lp


def _log_weights(trace: dict, keep: set[int]) -> Array:
    """Sum of the trace's log densities over every dimension not in ``keep``."""
    nesting = max((-d for d in keep), default=0)
    total = jnp.zeros(())
    for site in sample_sites(trace):
        lp = _site_log_prob(site)
        lp = lp.sum(tuple(d for d in range(-lp.ndim, 0) if d not in keep), keepdims=True)
        total = total + lp.reshape(lp.shape[max(lp.ndim - nesting, 0) :])
    return total


def _split(tree: object) -> tuple[list, tuple]:
    """``tree``'s array leaves, and what rebuilds it from them: its structure and its other
    leaves (Python numbers, strings), which stay concrete, as the model would see them."""
    leaves, treedef = jax.tree.flatten(tree)
    is_array = tuple(isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in leaves)
    others = tuple(None if a else leaf for leaf, a in zip(leaves, is_array, strict=True))
    return [leaf for leaf, a in zip(leaves, is_array, strict=True) if a], (
        treedef,
        is_array,
        others,
    )


def _join(arrays: list, spec: tuple) -> object:
    """The inverse of ``_split``."""
    treedef, is_array, others = spec
    arrays = iter(arrays)
    return jax.tree.unflatten(
        treedef, [next(arrays) if a else o for a, o in zip(is_array, others, strict=True)]
    )


def _traces(
    model: Callable, guide: Callable, params: dict, args: tuple, kwargs: dict
) -> Callable[[Array], tuple[dict, dict]]:
    """``key -> (guide trace, model trace)``: a hard sample of the discretised guide and
    the model replayed on it."""
    discrete_guide = handlers.substitute(discretize(guide), data=params)
    model = handlers.substitute(model, data=params)

    def traces(key: Array) -> tuple[dict, dict]:
        guide_key, model_key = jax.random.split(key)
        guide_trace = handlers.trace(handlers.seed(discrete_guide, guide_key)).get_trace(
            *args, **kwargs
        )
        replayed = handlers.replay(handlers.seed(model, model_key), trace=guide_trace)
        return guide_trace, handlers.trace(replayed).get_trace(*args, **kwargs)

    return traces


@partial(jax.jit, static_argnames=("model", "guide", "keep", "spec"))
def _particle_log_weights(
    keys: Array, params: dict, arrays: list, *, model, guide, keep: tuple, spec: tuple
) -> Array:
    """``log p(x, z_k) - log q(z_k)`` for each key, summed over all dims but ``keep``.  One
    compiled program per model, guide, and arguments' shapes and Python values: repeated
    bounds (other keys, other parameters) reuse it."""
    args, kwargs = _join(arrays, spec)
    traces = _traces(model, guide, params, args, kwargs)

    def log_weight(key: Array) -> Array:
        guide_trace, model_trace = traces(key)
        return _log_weights(model_trace, set(keep)) - _log_weights(guide_trace, set(keep))

    return jax.vmap(log_weight)(keys)


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
    reported as "test log-likelihood".  The particles are independent runs of the guide
    and the model, drawn with ``jax.vmap`` in a ``jax.jit``-compiled program (the
    particles' many small operations fuse: several times faster than eager on a CPU),
    compiled once per model, guide and shapes of the arguments and reused by later calls
    with other keys or parameters.  Any model works, whether or not it vectorises over
    particles; one that ``jax.jit`` cannot trace (numpy on the data) is drawn eagerly, with
    a warning.  A plate that subsamples is rejected, since the bound is of
    the data the call is given.

    :param rng_key: a PRNG key.
    :param model: the original discrete model (or any model with the guide's site names).
    :param guide: the trained relaxed guide (its Concrete-family sites are discretised).
    :param params: the trained parameters (``svi.get_params(state)``).
    :param num_samples: K.
    :param batch_size: particles per vectorised pass (default: all K at once); lower it to
        bound memory for a large K.
    :return: the estimate, a float (nats).
    """
    dynamic, spec = _split((args, kwargs))
    rng_key, key = jax.random.split(rng_key)
    prototype = _traces(model, guide, params, args, kwargs)(key)
    _check_not_subsampled(*prototype)
    statics = {"model": model, "guide": guide, "keep": tuple(sorted(plate_dims(*prototype)))}
    eager = partial(_particle_log_weights.__wrapped__, spec=spec, **statics)
    try:
        hash((*statics.values(), spec))
        compiled = partial(_particle_log_weights, spec=spec, **statics)
    except TypeError:  # an argument jit cannot key its cache on: compile for this call
        compiled = jax.jit(eager)
    keys, size = jax.random.split(rng_key, num_samples), batch_size or num_samples
    batches = [keys[i : i + size] for i in range(0, num_samples, size)]
    try:
        log_w = jnp.concatenate([compiled(k, params, dynamic) for k in batches])
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError) as error:
        warnings.warn(
            f"discrete_bound: the model or guide cannot be compiled by jax.jit "
            f"({type(error).__name__}: it reads a concrete value, e.g. numpy on the data); "
            "the particles are drawn eagerly, several times slower. Write them in jax.numpy "
            "to compile them.",
            stacklevel=2,
        )
        log_w = jnp.concatenate([eager(k, params, dynamic) for k in batches])
    bound = jax.nn.logsumexp(log_w, 0) - math.log(num_samples)
    return float(bound.sum())


@dataclass(frozen=True)
class constant_temperature:
    """The schedule ``step -> temperature``."""

    temperature: ArrayLike

    def __call__(self, step: ArrayLike) -> ArrayLike:
        return self.temperature


@dataclass(frozen=True)
class exponential_decay:
    """Jang et al. (2017, Sec. 4.1): ``step -> max(t_min, t0 exp(-rate step))``, traceable
    under ``jit`` (``step`` may be a traced integer)."""

    t0: float = 1.0
    rate: float = 1e-4
    t_min: float = 0.5

    def __call__(self, step: ArrayLike) -> Array:
        return jnp.maximum(self.t_min, self.t0 * jnp.exp(-self.rate * jnp.asarray(step)))
