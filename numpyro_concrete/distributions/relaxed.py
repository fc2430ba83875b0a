"""What every Concrete-family distribution shares: a temperature and one of probs/logits.

``RelaxedDiscrete`` parses ``(temperature, probs=None, logits=None)`` the way the
built-in relaxed classes do, but broadcasts a batched temperature against the logits'
batch shape and expands both parameters to ``batch_shape``, so every method can rely
on aligned shapes.  Because every parameter is expanded, a batch axis of one is a
batch axis of all: ``vmap_over`` maps them together.
"""

import copy
import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import Distribution, TransformedDistribution
from numpyro.distributions.batch_util import vmap_over
from numpyro.distributions.transforms import Transform
from numpyro.distributions.util import lazy_property
from numpyro.util import not_jax_tracer

__all__ = [
    "RelaxedDiscrete",
    "RelaxedTransformed",
    "check_event_shape",
    "no_closed_form",
    "no_closed_form_error",
    "validated_log_prob",
]

_PARAMS = ("temperature", "probs", "logits")


def no_closed_form_error(dist: object, quantity: str, reason: str) -> NotImplementedError:
    """The error raised for a moment or entropy that has no closed form, with the reason."""
    return NotImplementedError(f"{type(dist).__name__}.{quantity} has no closed form: {reason}")


def no_closed_form(quantity: str, reason: str) -> property:
    """A property that raises ``NotImplementedError`` saying why ``quantity`` is missing."""

    def fget(self: object) -> Array:
        raise no_closed_form_error(self, quantity, reason)

    return property(fget, doc=f"Not available in closed form: {reason}")


def _as_float(x: ArrayLike) -> Array:
    """``x`` as a floating array: a float array keeps its dtype, the rest get the default
    (float32, or float64 under x64)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _probs_to_logits(probs: Array, is_binary: bool) -> Array:
    """``log p`` (or ``logit p``) of ``p`` clamped to ``[eps, 1 - eps]``, as torch does."""
    eps = jnp.finfo(probs.dtype).eps
    p = jnp.clip(probs, eps, 1 - eps)
    return jnp.log(p) - jnp.log1p(-p) if is_binary else jnp.log(p)


def _parse_arguments(
    cls: type,
    categorical: bool,
    temperature: ArrayLike,
    probs: ArrayLike | None,
    logits: ArrayLike | None,
    validate: bool,
) -> tuple[Array, str, Array, tuple[int, ...], tuple[int, ...]]:
    """``(temperature, "probs"/"logits", that parameter, batch_shape, event_shape)`` from
    the arguments as the user passed them to ``cls`` (``categorical``: the last
    dimension of the parameter indexes categories), checked against
    ``cls.arg_constraints`` when ``validate``: an error names ``cls``, the argument and
    the values given, before any normalisation.  As in NumPyro's
    ``Distribution.validate_args``, the check runs at compile time
    (``jax.ensure_compile_time_eval``), so constant arguments are checked even when the
    constructor runs inside ``jit``; traced ones cannot be and are not."""
    name = cls.__name__
    if (probs is None) == (logits is None):
        raise ValueError(
            f"{name} takes exactly one of `probs` or `logits`, "
            f"got {'both' if probs is not None else 'neither'}."
        )
    with jax.ensure_compile_time_eval():  # constants stay constants under jit
        key, param = ("logits", _as_float(logits)) if probs is None else ("probs", _as_float(probs))
        temperature = jnp.asarray(temperature, dtype=param.dtype)
        if categorical and param.ndim < 1:
            raise ValueError(f"{name} needs `{key}` with at least one dimension, got {param!r}.")
        for arg, value in (("temperature", temperature), (key, param)) if validate else ():
            constraint = cls.arg_constraints[arg]
            ok = constraint(value)
            if not_jax_tracer(ok) and not np.all(ok):
                raise ValueError(
                    f"{name} got invalid `{arg}` (shape {value.shape}): {value!r}; "
                    f"it must satisfy the constraint {constraint}."
                )
    event_shape = param.shape[-1:] if categorical else ()
    param_batch = param.shape[: param.ndim - len(event_shape)]
    try:
        batch_shape = jnp.broadcast_shapes(temperature.shape, param_batch)
    except ValueError:
        raise ValueError(
            f"{name}: `temperature` of shape {temperature.shape} does not broadcast "
            f"against `{key}` of shape {param.shape} (batch shape {param_batch})."
        ) from None
    return temperature, key, param, batch_shape, event_shape


def _warn_on_boundary(dist: Distribution, log_p: Array) -> None:
    """Warn (Python's default filter: once per message) that ``dist`` scored a value without
    its intermediates: eagerly, when that gave ``+inf`` (a value on the boundary); inside
    ``jit``, where values cannot be checked without a per-call host callback, when the
    computation is traced.  Either message says what to use instead."""
    if not_jax_tracer(log_p):
        if not np.any(np.asarray(log_p) == np.inf):
            return
        what = (
            "got a value on the boundary of its support (a coordinate exactly 0 or 1) and "
            "returned the density's limit there, +inf."
        )
    else:
        what = (
            "is scoring a value without its intermediates inside jit, where it cannot check "
            "it: a value on the boundary of the support (a coordinate exactly 0 or 1) would "
            "get the density's limit, +inf."
        )
    warnings.warn(
        f"{type(dist).__name__}.log_prob {what} A float32 sample rounds onto the boundary at "
        "low temperature or extreme logits, and without its intermediates (a model's prior "
        "scoring a guide's sample, log_prob(sample(key))) it is scored there. Make "
        f"{dist.base_class.__name__} the sample site and map its value in the model "
        "(exp / sigmoid), or pass the intermediates sample_with_intermediates() returned.",
        RuntimeWarning,
        stacklevel=4,  # the caller of the validated log_prob
    )


def check_event_shape(dist: Distribution, value: ArrayLike) -> Array:
    """``value`` as an array; ``ValueError`` naming the expected event shape when its shape
    does not end in it (JAX would only say that shapes are incompatible).  A constant
    stays a constant under ``jit``, so that validation can check it."""
    with jax.ensure_compile_time_eval():
        value = jnp.asarray(value)
    n = len(dist.event_shape)
    if n and value.shape[value.ndim - n :] != tuple(dist.event_shape):
        raise ValueError(
            f"{type(dist).__name__}.log_prob expects values whose shape ends in the event "
            f"shape {tuple(dist.event_shape)}, got `value` of shape {value.shape}."
        )
    return value


def _expanded_shape(dist: Distribution, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``batch_shape`` as a tuple, with NumPyro's ``expand`` error when ``dist``'s batch
    shape does not broadcast to it."""
    batch_shape = tuple(batch_shape)
    try:
        fits = jnp.broadcast_shapes(dist.batch_shape, batch_shape) == batch_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"Cannot broadcast distribution of shape {dist.batch_shape} to shape {batch_shape}"
        )
    return batch_shape


def _validate_in_support(dist: Distribution, value: ArrayLike) -> Array:
    """NumPyro's ``Distribution._validate_sample`` evaluated at compile time:
    ``dist.support(value)``, with NumPyro's warning when it is False somewhere.  A constant
    value is checked inside ``jit`` too; a traced one cannot be (``validated_log_prob``
    still gives it ``-inf``)."""
    with jax.ensure_compile_time_eval():
        mask = dist.support(value)
        if not_jax_tracer(mask) and not np.all(mask):
            warnings.warn(
                "Out-of-support values provided to log prob method. The value argument should "
                f"be within the support. {type(dist).__name__}'s support is {dist.support}; "
                "log_prob is -inf at those values.",
                stacklevel=3,  # the caller of the validated log_prob
            )
    return mask


def validated_log_prob(log_prob: Callable[..., Array]) -> Callable[..., Array]:
    """``log_prob(self, value, *args)`` with the event-shape check and NumPyro's convention
    for a value outside the support (its ``validate_sample``): under validation it warns
    and scores ``-inf``.

    The wrapped method scores a point of the support (``support.feasible_like``) in place
    of such a value, so neither the result nor its gradient carries a NaN from it.  When
    the check is concrete and finds no value in the support, nothing is scored (a
    straight-through class needs its intermediates only for values in its support).
    """

    @functools.wraps(log_prob)
    def wrapper(self: Distribution, value: ArrayLike, *args: object, **kwargs: object) -> Array:
        value = check_event_shape(self, value)
        if not self._validate_args:
            return log_prob(self, value, *args, **kwargs)
        inside = _validate_in_support(self, value)
        if not_jax_tracer(inside) and not np.asarray(inside).any():
            shape = jnp.broadcast_shapes(jnp.shape(inside), self.batch_shape)
            return jnp.full(shape, -jnp.inf, dtype=self.logits.dtype)
        per_coordinate = jnp.reshape(inside, jnp.shape(inside) + (1,) * self.support.event_dim)
        value = jnp.where(per_coordinate, value, self.support.feasible_like(value))
        return jnp.where(inside, log_prob(self, value, *args, **kwargs), -jnp.inf)

    return wrapper


class RelaxedDiscrete(Distribution):
    """Base of the Concrete family: ``temperature`` lambda > 0 and ``logits`` = log alpha.

    ``_categorical`` is True when the last dimension of the logits indexes ``n``
    categories (an event dimension), False for the binary case (alpha is a scalar).
    Categorical logits are shifted so that the largest is 0 (``logits - max(logits)``,
    the shift held out of the gradient): the same distribution, since every Concrete
    density and sampler is invariant to shifting log alpha, and float32 sums such as
    ``log alpha - lambda y`` keep the precision of normalised logits at any offset of
    the logits given, for a reduction where a normalisation would add a ``logsumexp``
    and its gradient to every construction (a fifth of the time of a sample-and-score
    step, ``benchmarks/throughput.py``). NumPyro's ``CategoricalLogits`` keeps them as
    given, torch's ``Categorical`` normalises them (a ``logsumexp``). ``probs`` is
    normalised. A logit of ``-inf`` makes its category impossible: the distribution
    lives on the face of the simplex spanned by the others.
    """

    _categorical: bool = True
    pytree_data_fields = _PARAMS
    reparametrized_params = list(_PARAMS)

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        validate = self._validate_args if validate_args is None else validate_args
        self._setup(type(self), temperature, probs, logits, validate)

    @classmethod
    def _built_for(
        cls,
        owner: type,
        temperature: ArrayLike,
        probs: ArrayLike | None,
        logits: ArrayLike | None,
        validate: bool,
    ) -> "RelaxedDiscrete":
        """An instance whose argument errors name ``owner``, the class the user built
        (``Concrete`` for the ``ExpConcrete`` inside it)."""
        new = cls.__new__(cls)
        new._setup(owner, temperature, probs, logits, validate)
        return new

    def _setup(
        self,
        owner: type,
        temperature: ArrayLike,
        probs: ArrayLike | None,
        logits: ArrayLike | None,
        validate: bool,
    ) -> None:
        temperature, key, param, batch_shape, event_shape = _parse_arguments(
            owner, self._categorical, temperature, probs, logits, validate
        )
        if key == "probs":
            self.probs = param
            logits = _probs_to_logits(param, is_binary=not self._categorical)
        else:
            logits = param
        if self._categorical:
            logits = logits - jax.lax.stop_gradient(jnp.max(logits, -1, keepdims=True))
        self.temperature = temperature
        self.logits = logits
        self._broadcast_params(batch_shape, event_shape)
        super().__init__(batch_shape, event_shape, validate_args=False)  # checked above
        self._validate_args = validate

    def _broadcast_params(self, batch_shape: tuple[int, ...], event_shape: tuple[int, ...]) -> None:
        """Broadcast the temperature to ``batch_shape``, logits (and given probs) beyond it."""
        self.temperature = jnp.broadcast_to(self.temperature, batch_shape)
        self.logits = jnp.broadcast_to(self.logits, batch_shape + event_shape)
        if "probs" in self.__dict__:
            self.probs = jnp.broadcast_to(self.probs, batch_shape + event_shape)

    def expand(self, batch_shape: tuple[int, ...]) -> "RelaxedDiscrete":
        """The same distribution with its parameters broadcast to ``batch_shape``.

        Unlike NumPyro's ``Distribution.expand`` this keeps the class (an
        ``ExpandedDistribution`` would hide it from ``relax``/``discretize`` and from the
        straight-through classes' intermediates); the parameters are broadcast instead.
        """
        batch_shape = _expanded_shape(self, batch_shape)
        new = copy.copy(self)
        new._broadcast_params(batch_shape, self.event_shape)
        new._batch_shape = batch_shape
        return new

    @lazy_property
    def probs(self) -> Array:
        """The probabilities of the discrete distribution being relaxed."""
        return jax.nn.softmax(self.logits, -1) if self._categorical else jax.nn.sigmoid(self.logits)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.logits.shape

    @classmethod
    def infer_shapes(
        cls,
        temperature: tuple[int, ...],
        probs: tuple[int, ...] | None = None,
        logits: tuple[int, ...] | None = None,
        *scalars: tuple[int, ...],
        **scalar_kwargs: object,
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(batch_shape, event_shape)`` from the parameters' shapes, as ``__init__`` does.

        Other arguments (``HardConcrete``'s ``low`` and ``high``) are scalars.
        """
        shape = tuple(logits if probs is None else probs)
        event_shape = shape[-1:] if cls._categorical else ()
        batch_shape = jnp.broadcast_shapes(
            tuple(temperature), shape[: len(shape) - len(event_shape)]
        )
        return batch_shape, event_shape

    _validate_sample = _validate_in_support


class RelaxedTransformed(TransformedDistribution):
    """A log-space member of the family pushed through an exact map.

    Subclasses name the log-space class (``base_class``), the map (``transform_class``)
    and the log density of the relaxed value: ``log_density(logits, temperature, x)`` at a
    value ``x``, which also defines it on the boundary, and
    ``log_density_interior(logits, temperature, y)``, the same written in terms of a
    finite log-space value ``y`` (a sample's exact value).
    JAX has no transform cache; NumPyro's intermediates play its part:
    ``sample_with_intermediates`` returns ``(x, [[y, None]])`` (``TransformedDistribution``'s
    own format) with ``y`` the exact log-space sample, and ``log_prob(x, intermediates)``
    scores ``y``, so a sample whose coordinates rounded to 0 or 1 is still scored at its
    exact point.  NumPyro's inference utilities (``log_density``, ``Trace_ELBO``) pass
    ``site["intermediates"]`` to ``log_prob``.  Moments and entropy of softmax/sigmoid
    transformed noise are not elementary.
    """

    base_class: type[RelaxedDiscrete]
    transform_class: type[Transform]
    log_density: Callable[[Array, Array, Array], Array]
    log_density_interior: Callable[[Array, Array, Array], Array]
    reparametrized_params = list(_PARAMS)

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        validate = self._validate_args if validate_args is None else validate_args
        base = self.base_class._built_for(type(self), temperature, probs, logits, validate)
        super().__init__(base, self.transform_class(), validate_args=False)  # checked in base
        self._validate_args = validate

    def expand(self, batch_shape: tuple[int, ...]) -> "RelaxedTransformed":
        """The same distribution over the base distribution expanded to ``batch_shape``
        (the class is kept, as ``RelaxedDiscrete.expand`` says why)."""
        batch_shape = _expanded_shape(self, batch_shape)
        new = copy.copy(self)
        new.base_dist = self.base_dist.expand(batch_shape)
        new._batch_shape = batch_shape
        return new

    @classmethod
    def gather_pytree_data_fields(cls) -> tuple[str, ...]:
        """The parameters live in ``base_dist``; ``temperature`` etc. are views of it."""
        return ("base_dist", "transforms")

    @classmethod
    def infer_shapes(cls, *args: tuple[int, ...], **kwargs: object) -> tuple[tuple[int, ...], ...]:
        """Shapes as ``base_class.infer_shapes``: the map keeps the shape."""
        return cls.base_class.infer_shapes(*args, **kwargs)

    def get_args(self) -> dict[str, Array]:
        """The base distribution's parameters: ``probs`` when given, never the derived one."""
        return self.base_dist.get_args()

    @property
    def temperature(self) -> Array:
        return self.base_dist.temperature

    @property
    def logits(self) -> Array:
        return self.base_dist.logits

    @property
    def probs(self) -> Array:
        return self.base_dist.probs

    @validated_log_prob
    def log_prob(self, value: ArrayLike, intermediates: list | None = None) -> Array:
        relaxed, intermediates = self._relaxed(value, intermediates)
        if intermediates is not None:  # the sample's exact log-space value [[y, None]], finite
            return type(self).log_density_interior(
                self.logits, self.temperature, intermediates[0][0]
            )
        log_p = type(self).log_density(self.logits, self.temperature, relaxed)
        _warn_on_boundary(self, log_p)
        return log_p

    def _relaxed(
        self, value: ArrayLike, intermediates: list | None
    ) -> tuple[ArrayLike, list | None]:
        """The relaxed value that ``log_prob`` scores and its intermediates (a hook for
        straight-through classes)."""
        return value, intermediates

    mean = no_closed_form("mean", "moments of softmax/sigmoid of Gumbel noise are not elementary")
    mode = no_closed_form("mode", "the maximiser of the density has no closed form")
    variance = no_closed_form("variance", "moments of softmax/sigmoid of noise are not elementary")

    def entropy(self) -> Array:
        raise no_closed_form_error(self, "entropy()", "E[log p(X)] is not elementary")

    _validate_sample = _validate_in_support


@vmap_over.register
def _vmap_over_relaxed_discrete(
    dist: RelaxedDiscrete,
    temperature: int | None = None,
    probs: int | None = None,
    logits: int | None = None,
) -> RelaxedDiscrete:
    """In-axes for ``dist``: the (non-negative) batch axis given for any parameter."""
    axis = next((a for a in (temperature, probs, logits) if a is not None), None)
    return vmap_over.dispatch(Distribution)(dist, temperature=axis, probs=axis, logits=axis)


@vmap_over.register
def _vmap_over_relaxed_transformed(
    dist: RelaxedTransformed,
    temperature: int | None = None,
    probs: int | None = None,
    logits: int | None = None,
) -> RelaxedTransformed:
    """In-axes for ``dist``: those of its base distribution; the map has no parameters."""
    axes = vmap_over.dispatch(Distribution)(dist)
    axes.base_dist = vmap_over(dist.base_dist, temperature=temperature, probs=probs, logits=logits)
    return axes
