"""What every Concrete-family distribution shares: a temperature and one of probs/logits.

``RelaxedDiscrete`` parses ``(temperature, probs=None, logits=None)`` the way torch's
relaxed classes do, but broadcasts a batched temperature against the logits' batch
shape (torch's classes do not: pytorch issue #37162) and expands both parameters to
``batch_shape``, so every method can rely on aligned shapes.
"""

import math
import warnings
from collections.abc import Callable

import torch
from pyro.distributions import TorchDistribution, TransformedDistribution
from torch.distributions.transforms import Transform
from torch.distributions.utils import lazy_property, probs_to_logits

__all__ = [
    "Carrier",
    "RelaxedDiscrete",
    "RelaxedSample",
    "RelaxedTransformed",
    "check_event_shape",
    "no_closed_form",
    "no_closed_form_error",
]


def no_closed_form_error(dist: object, quantity: str, reason: str) -> NotImplementedError:
    """The error raised for a moment or entropy that has no closed form, with the reason."""
    return NotImplementedError(f"{type(dist).__name__}.{quantity} has no closed form: {reason}")


def no_closed_form(quantity: str, reason: str) -> property:
    """A property that raises ``NotImplementedError`` saying why ``quantity`` is missing."""

    def fget(self: object) -> torch.Tensor:
        raise no_closed_form_error(self, quantity, reason)

    return property(fget, doc=f"Not available in closed form: {reason}")


def _as_float(x: torch.Tensor | float) -> torch.Tensor:
    """``x`` as a floating tensor: a float tensor keeps its dtype, the rest get the default."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x
    return torch.as_tensor(x, dtype=torch.get_default_dtype())


def _parse_arguments(
    cls: type,
    categorical: bool,
    temperature: torch.Tensor | float,
    probs: torch.Tensor | None,
    logits: torch.Tensor | None,
    validate: bool,
) -> tuple[torch.Tensor, str, torch.Tensor, torch.Size, torch.Size]:
    """``(temperature, "probs"/"logits", that parameter, batch_shape, event_shape)`` from
    the arguments as the user passed them to ``cls`` (``categorical``: the last
    dimension of the parameter indexes categories), checked against
    ``cls.arg_constraints`` when ``validate``: an error names ``cls``, the argument and
    the values given, before any normalisation."""
    name = cls.__name__
    if (probs is None) == (logits is None):
        raise ValueError(
            f"{name} takes exactly one of `probs` or `logits`, "
            f"got {'both' if probs is not None else 'neither'}."
        )
    key, param = ("logits", _as_float(logits)) if probs is None else ("probs", _as_float(probs))
    temperature = torch.as_tensor(temperature, dtype=param.dtype, device=param.device)
    if categorical and param.dim() < 1:
        raise ValueError(f"{name} needs `{key}` with at least one dimension, got {param!r}.")
    if validate:
        for arg, value in (("temperature", temperature), (key, param)):
            constraint = cls.arg_constraints[arg]
            if not bool(constraint.check(value).all()):
                raise ValueError(
                    f"{name} got invalid `{arg}` (shape {tuple(value.shape)}): {value!r}; "
                    f"it must satisfy the constraint {constraint}."
                )
    event_shape = param.shape[-1:] if categorical else torch.Size()
    param_batch = param.shape[: param.dim() - len(event_shape)]
    try:  # a scalar temperature, the common case, without broadcast_shapes' Python cost
        batch_shape = (
            param_batch
            if temperature.dim() == 0
            else torch.broadcast_shapes(temperature.shape, param_batch)
        )
    except RuntimeError:
        raise ValueError(
            f"{name}: `temperature` of shape {tuple(temperature.shape)} does not broadcast "
            f"against `{key}` of shape {tuple(param.shape)} (batch shape {tuple(param_batch)})."
        ) from None
    return temperature, key, param, batch_shape, event_shape


def _boundary_warning(dist: TorchDistribution) -> str:
    """What to do when a simplex-space class scores a value on its boundary."""
    log_space = dist.base_class.__name__
    return (
        f"{type(dist).__name__}.log_prob got a value on the boundary of its support (a "
        "coordinate exactly 0 or 1) and returned the density's limit there, +inf. A "
        "float32 sample rounds there at low temperature or extreme logits; scored without "
        "its exact log-space value (e.g. after arithmetic, or rebuilt from numbers) it gets "
        f"this limit. Make {log_space} the sample site and map its value in the model "
        "(exp / sigmoid), or score the tensor rsample() returned, which carries its exact "
        "log-space value."
    )


def check_event_shape(dist: TorchDistribution, value: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the expected event shape when ``value``'s does not end
    in it (torch would only say that two sizes differ)."""
    n = len(dist.event_shape)
    if n and tuple(value.shape[value.dim() - n :]) != tuple(dist.event_shape):
        raise ValueError(
            f"{type(dist).__name__}.log_prob expects values whose shape ends in the event "
            f"shape {tuple(dist.event_shape)}, got `value` of shape {tuple(value.shape)}."
        )


class RelaxedDiscrete(TorchDistribution):
    """Base of the Concrete family: ``temperature`` lambda > 0 and ``logits`` = log alpha.

    ``_categorical`` is True when the last dimension of the logits indexes ``n``
    categories (an event dimension), False for the binary case (alpha is a scalar).
    Categorical logits are shifted so that the largest is 0 (``logits - max(logits)``,
    the shift held out of the gradient): the same distribution, since every Concrete
    density and sampler is invariant to shifting log alpha, and float32 sums such as
    ``log alpha - lambda y`` keep the precision of normalised logits at any offset of
    the logits given, for a reduction where a normalisation would add a ``logsumexp``
    and its gradient to every construction (a fifth of the time of a sample-and-score
    step, ``benchmarks/throughput.py``). torch's ``Categorical`` normalises them (a
    ``logsumexp``), NumPyro's ``CategoricalLogits`` keeps them as given. ``probs`` is
    normalised. A logit of ``-inf`` makes its category impossible: the distribution
    lives on the face of the simplex spanned by the others.

    ``ExpConcrete`` and the ``log_prob`` of the transformed classes compute with
    ``_given_temperature``, the temperature as given (it broadcasts against
    ``batch_shape``): a scalar temperature, the usual case, then costs torch one element
    per operation, not one per batch element.
    """

    _categorical: bool = True

    def __init__(
        self,
        temperature: torch.Tensor | float,
        probs: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        validate = self._validate_args if validate_args is None else validate_args
        self._setup(type(self), temperature, probs, logits, validate)

    @classmethod
    def _built_for(
        cls,
        owner: type,
        temperature: torch.Tensor | float,
        probs: torch.Tensor | None,
        logits: torch.Tensor | None,
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
        temperature: torch.Tensor | float,
        probs: torch.Tensor | None,
        logits: torch.Tensor | None,
        validate: bool,
    ) -> None:
        temperature, key, param, batch_shape, event_shape = _parse_arguments(
            owner, self._categorical, temperature, probs, logits, validate
        )
        if key == "probs":
            self.probs = param.expand(batch_shape + event_shape)
            logits = probs_to_logits(param, is_binary=not self._categorical)
        else:
            logits = param
        if self._categorical:
            logits = logits - logits.detach().amax(-1, keepdim=True)
        self._given_temperature = temperature
        self.temperature = temperature.expand(batch_shape)
        shape = batch_shape + event_shape
        self.logits = logits if logits.shape == shape else logits.expand(shape)
        super().__init__(batch_shape, event_shape, validate_args=False)  # checked above
        self._validate_args = validate

    def expand(self, batch_shape: torch.Size, _instance=None) -> "RelaxedDiscrete":
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new._given_temperature = self._given_temperature
        new.temperature = self.temperature.expand(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.event_shape)
        if "probs" in self.__dict__:
            new.probs = self.probs.expand(batch_shape + self.event_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def probs(self) -> torch.Tensor:
        """The probabilities of the discrete distribution being relaxed."""
        return self.logits.softmax(-1) if self._categorical else self.logits.sigmoid()

    @property
    def param_shape(self) -> torch.Size:
        return self.logits.shape

    @classmethod
    def infer_shapes(
        cls,
        temperature: torch.Size,
        probs: torch.Size | None = None,
        logits: torch.Size | None = None,
        *scalars: torch.Size,
        **scalar_kwargs: object,
    ) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` from the parameters' shapes, as ``__init__`` does.

        Other arguments (``HardConcrete``'s ``low`` and ``high``) are scalars.
        """
        shape = torch.Size(logits if probs is None else probs)
        event_shape = shape[-1:] if cls._categorical else torch.Size()
        batch_shape = torch.broadcast_shapes(
            torch.Size(temperature), shape[: len(shape) - len(event_shape)]
        )
        return batch_shape, event_shape


class Carrier(torch.Tensor):
    """A tensor that carries companion values (``_carried``, attribute names) with it.

    Operations that copy or re-view a tensor whole apply to the companions too (a tensor
    companion goes through the same operation, anything else is shared); every other
    operation returns a plain ``torch.Tensor``.  Unlike an attribute stashed on a plain
    tensor (Pyro issue #3127), the companions survive ``clone``, ``detach``, ``expand``,
    ``to`` and pickling, and travel with the value through a Pyro trace.
    """

    _carried: tuple[str, ...] = ()
    _CARRY = frozenset(
        {
            torch.Tensor.clone,
            torch.Tensor.detach,
            torch.Tensor.expand,
            torch.Tensor.expand_as,
            torch.Tensor.to,
            torch.Tensor.contiguous,
            torch.Tensor.cpu,
            torch.Tensor.requires_grad_,
        }
    )

    @classmethod
    def wrap(cls, value: torch.Tensor, *companions: object) -> "Carrier":
        """``value`` as a ``cls`` carrying ``companions`` (in the order of ``_carried``)."""
        out = value.as_subclass(cls)
        for name, companion in zip(cls._carried, companions, strict=True):
            setattr(out, name, companion)
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # torch's documented way to run the plain op: the result is a plain tensor
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if func in cls._CARRY and isinstance(args[0], cls):
            companions = [getattr(args[0], name) for name in cls._carried]
            companions = [
                func(c, *args[1:], **kwargs) if isinstance(c, torch.Tensor) else c
                for c in companions
            ]
            return cls.wrap(out, *companions)
        return out


class RelaxedSample(Carrier):
    """A relaxed sample ``x`` (Concrete, Binary Concrete) that carries the exact log-space
    value ``log_space`` it was computed from and the map (``transform``, its class) from
    one to the other, so that any distribution of the same family scores it at its exact
    point, even where ``x`` rounded onto the boundary of the support."""

    _carried = ("log_space", "transform")
    log_space: torch.Tensor
    transform: type[Transform]


class RelaxedTransformed(TransformedDistribution):
    """A log-space member of the family pushed through an exact map.

    Subclasses name the log-space class (``base_class``), the map (``transform_class``)
    and the log density of the relaxed value: ``log_density(logits, temperature, x)`` at a
    value ``x``, which also defines it on the boundary, and
    ``log_density_interior(logits, temperature, y)``, the same written in terms of a
    finite log-space value ``y``.  ``rsample`` returns a :class:`RelaxedSample` that
    carries its exact log-space value, and ``log_prob`` of such a value (this
    distribution's sample, or another one's: a guide's sample scored by a model's prior)
    is the density at that exact point, finite where ``x`` rounded onto the boundary.
    Moments and entropy of softmax/sigmoid-transformed noise are not elementary.
    """

    base_class: type[RelaxedDiscrete]
    transform_class: type[Transform]
    log_density: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    log_density_interior: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    has_rsample = True

    def __init__(
        self,
        temperature: torch.Tensor | float,
        probs: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        validate = self._validate_args if validate_args is None else validate_args
        base = self.base_class._built_for(type(self), temperature, probs, logits, validate)
        super().__init__(base, self.transform_class(), validate_args=False)  # checked in base
        self._validate_args = validate

    @classmethod
    def infer_shapes(cls, *args: torch.Size, **kwargs: object) -> tuple[torch.Size, torch.Size]:
        """Shapes as ``base_class.infer_shapes``: the map keeps the shape."""
        return cls.base_class.infer_shapes(*args, **kwargs)

    def expand(self, batch_shape: torch.Size, _instance=None) -> "RelaxedTransformed":
        new = self._get_checked_instance(type(self), _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def temperature(self) -> torch.Tensor:
        return self.base_dist.temperature

    @property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits

    @property
    def probs(self) -> torch.Tensor:
        return self.base_dist.probs

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        check_event_shape(self, value)
        if self._validate_args:
            self._validate_sample(value)
        relaxed = self._relaxed(value)
        if isinstance(relaxed, RelaxedSample) and relaxed.transform is self.transform_class:
            return type(self).log_density_interior(
                self.logits, self.base_dist._given_temperature, relaxed.log_space
            )
        log_p = type(self).log_density(self.logits, self.base_dist._given_temperature, relaxed)
        if (log_p == math.inf).any():
            warnings.warn(_boundary_warning(self), RuntimeWarning, stacklevel=2)
        return log_p

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> RelaxedSample:
        y = self.base_dist.rsample(sample_shape)
        return RelaxedSample.wrap(self.transforms[0](y), y, self.transform_class)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> RelaxedSample:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _relaxed(self, value: torch.Tensor) -> torch.Tensor:
        """The relaxed value that ``log_prob`` scores (a hook for straight-through classes)."""
        return value

    mean = no_closed_form("mean", "moments of softmax/sigmoid of Gumbel noise are not elementary")
    mode = no_closed_form("mode", "the maximiser of the density has no closed form")
    variance = no_closed_form("variance", "moments of softmax/sigmoid of noise are not elementary")

    def entropy(self) -> torch.Tensor:
        raise no_closed_form_error(self, "entropy()", "E[log p(X)] is not elementary")
