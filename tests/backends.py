"""One adapter per backend, so that ``contract_suite.py`` states the contract once.

The suite speaks numpy: parameters go in as numpy arrays (or Python floats), values and
gradients come back as numpy arrays.  An adapter owns everything backend-specific:

- building a distribution in a given float dtype (``"float32"`` or ``"float64"``);
- drawing samples with a fixed seed, returning a :class:`Draw` whose ``handle`` lets the
  distribution score *its own* sample exactly (Pyro: the tensor ``rsample`` returned,
  which carries its exact log-space value; NumPyro: the ``intermediates`` of
  ``sample_with_intermediates``);
- the exact log-space value behind a sample of ``Concrete``/``BinaryConcrete`` and the
  relaxed sample behind a straight-through value;
- autodiff gradients (``torch.autograd`` / ``jax.grad``).

Float64 in NumPyro: JAX truncates to float32 unless x64 is enabled.  We do **not** flip
``jax_enable_x64`` for the session (that would silently turn other NumPyro tests, and
every float32 check here, into float64 runs); instead every NumPyro call that touches a
float64 distribution runs inside the ``jax.enable_x64(True)`` context manager, and
float32 calls run with JAX's default (x64 off), exactly as a user would.
"""

import abc
import contextlib
import functools
import inspect
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CLASS_NAMES", "Backend", "Draw", "NumpyroBackend", "PyroBackend"]

CLASS_NAMES = (
    "ExpConcrete",
    "Concrete",
    "LogitBinaryConcrete",
    "BinaryConcrete",
    "HardConcrete",
    "ConcreteStraightThrough",
    "BinaryConcreteStraightThrough",
)


@dataclass
class Draw:
    """A sample: ``value`` as numpy, ``handle`` what the backend needs to score it exactly."""

    value: np.ndarray
    handle: Any


class Backend(abc.ABC):
    """What the contract suite needs from a backend (numpy in, numpy out)."""

    name: str
    module: Any
    #: Under validation, ``log_prob`` of a value outside the support raises ``ValueError``
    #: (torch's convention) rather than warning and giving ``-inf`` (NumPyro's).
    outside_support_raises: bool

    @abc.abstractmethod
    def make(
        self,
        cls_name,
        temperature,
        logits=None,
        probs=None,
        *,
        dtype="float64",
        validate_args=None,
        **kwargs,
    ):
        """``module.<cls_name>(temperature, probs=..., logits=..., validate_args=..., **kwargs)``
        with array arguments converted to the backend's arrays of ``dtype``; Python floats
        are passed through unchanged."""

    @abc.abstractmethod
    def batch_shape(self, dist) -> tuple: ...

    @abc.abstractmethod
    def event_shape(self, dist) -> tuple: ...

    @abc.abstractmethod
    def expand(self, dist, batch_shape): ...

    @abc.abstractmethod
    def dtype(self, dist) -> str:
        """The float dtype of the distribution's parameters, ``"float32"``/``"float64"``."""

    @abc.abstractmethod
    def sample(self, dist, shape=(), seed=0) -> Draw:
        """A reparameterised sample of ``shape + batch_shape + event_shape``."""

    @abc.abstractmethod
    def log_prob(self, dist, value) -> np.ndarray:
        """``log_prob`` of a :class:`Draw` (scored exactly, through its handle) or of a
        plain array (converted to the distribution's dtype)."""

    @abc.abstractmethod
    def in_support(self, dist, value) -> np.ndarray:
        """``dist.support`` checked at ``value`` (a :class:`Draw` or an array)."""

    @abc.abstractmethod
    def log_space_value(self, dist, draw: Draw) -> np.ndarray:
        """The exact log-space value (``log x`` / ``logit x``) a Concrete / BinaryConcrete
        sample was computed from, before any underflow or rounding of ``x``."""

    @abc.abstractmethod
    def relaxed_value(self, dist, draw: Draw) -> np.ndarray:
        """The relaxed sample that a straight-through sample was rounded from."""

    @abc.abstractmethod
    def quantity(self, dist, name) -> np.ndarray:
        """A property (``mean``, ``mode``, ``variance``, ``prob_nonzero``, ...) or a
        zero-argument method (``entropy``) of the distribution, as numpy."""

    def pickle_round_trip(self, dist):
        """``pickle.loads(pickle.dumps(dist))``."""
        return pickle.loads(pickle.dumps(dist))

    @abc.abstractmethod
    def grad_log_prob(
        self, cls_name, temperature, logits, value, *, dtype="float64", **kwargs
    ) -> tuple[np.ndarray, dict]:
        """``log_prob(value)`` and the gradients of its sum w.r.t. ``"logits"``,
        ``"temperature"`` and ``"value"`` (value held fixed, not a sample)."""

    @abc.abstractmethod
    def grad_sample(
        self, cls_name, temperature, logits, shape, seed, weights, *, dtype="float64", **kwargs
    ) -> tuple[np.ndarray, dict]:
        """The sample drawn with ``seed`` and the pathwise gradients of
        ``sum(weights * sample)`` w.r.t. ``"logits"`` and ``"temperature"``."""

    @abc.abstractmethod
    def grad_log_prob_of_own_sample(
        self, cls_name, temperature, logits, shape, seed, *, dtype="float32", **kwargs
    ) -> tuple[np.ndarray, np.ndarray]:
        """``log_prob`` of a sample drawn with ``seed`` and the pathwise gradient of its sum
        w.r.t. the logits, as in a single-sample ELBO term."""


# --- Pyro --------------------------------------------------------------------------


class PyroBackend(Backend):
    name = "pyro"
    outside_support_raises = True

    def __init__(self):
        import torch

        import pyro_concrete

        self.torch = torch
        self.module = pyro_concrete

    def _tensor(self, x, dtype, requires_grad=False):
        t = self.torch.tensor(np.asarray(x), dtype=getattr(self.torch, dtype))
        return t.requires_grad_(requires_grad)

    def _arg(self, x, dtype):
        if x is None or isinstance(x, float | int | self.torch.Tensor):
            return x
        return self._tensor(x, dtype)

    def make(
        self,
        cls_name,
        temperature,
        logits=None,
        probs=None,
        *,
        dtype="float64",
        validate_args=None,
        **kwargs,
    ):
        cls = getattr(self.module, cls_name)
        return cls(
            self._arg(temperature, dtype),
            probs=self._arg(probs, dtype),
            logits=self._arg(logits, dtype),
            validate_args=validate_args,
            **kwargs,
        )

    def batch_shape(self, dist):
        return tuple(dist.batch_shape)

    def event_shape(self, dist):
        return tuple(dist.event_shape)

    def expand(self, dist, batch_shape):
        return dist.expand(self.torch.Size(batch_shape))

    def dtype(self, dist):
        return str(dist.logits.dtype).removeprefix("torch.")

    def sample(self, dist, shape=(), seed=0):
        self.torch.manual_seed(seed)
        with self.torch.no_grad():
            x = dist.rsample(self.torch.Size(shape))
        return Draw(value=x.numpy().copy(), handle=x)

    def _value(self, dist, value):
        if isinstance(value, Draw):
            return value.handle
        return self._tensor(value, self.dtype(dist))

    def log_prob(self, dist, value):
        with self.torch.no_grad():
            return dist.log_prob(self._value(dist, value)).numpy().copy()

    def in_support(self, dist, value):
        return dist.support.check(self._value(dist, value)).numpy().copy()

    def log_space_value(self, dist, draw):
        # A sample (for a straight-through sample: the relaxed sample it carries) is a
        # RelaxedSample that carries the log-space value it was computed from.
        x = getattr(draw.handle, "relaxed", draw.handle)
        return x.log_space.detach().numpy().copy()

    def relaxed_value(self, dist, draw):
        return draw.handle.relaxed.detach().numpy().copy()

    def quantity(self, dist, name):
        attr = getattr(dist, name)
        value = attr() if callable(attr) else attr
        return value.detach().numpy().copy()

    def grad_log_prob(self, cls_name, temperature, logits, value, *, dtype="float64", **kwargs):
        t = self._tensor(temperature, dtype, requires_grad=True)
        a = self._tensor(logits, dtype, requires_grad=True)
        v = self._tensor(value, dtype, requires_grad=True)
        dist = self.make(cls_name, t, a, dtype=dtype, validate_args=False, **kwargs)
        lp = dist.log_prob(v)
        grads = self.torch.autograd.grad(lp.sum(), [a, t, v], allow_unused=True)
        names = ("logits", "temperature", "value")
        return lp.detach().numpy().copy(), {
            k: _np_grad(g, x) for k, g, x in zip(names, grads, (a, t, v), strict=True)
        }

    def grad_sample(
        self, cls_name, temperature, logits, shape, seed, weights, *, dtype="float64", **kwargs
    ):
        t = self._tensor(temperature, dtype, requires_grad=True)
        a = self._tensor(logits, dtype, requires_grad=True)
        dist = self.make(cls_name, t, a, dtype=dtype, **kwargs)
        self.torch.manual_seed(seed)
        x = dist.rsample(self.torch.Size(shape))
        obj = (self._tensor(weights, dtype) * x).sum()
        g_a, g_t = self.torch.autograd.grad(obj, [a, t], allow_unused=True)
        grads = {"logits": _np_grad(g_a, a), "temperature": _np_grad(g_t, t)}
        return x.detach().numpy().copy(), grads

    def grad_log_prob_of_own_sample(
        self, cls_name, temperature, logits, shape, seed, *, dtype="float32", **kwargs
    ):
        a = self._tensor(logits, dtype, requires_grad=True)
        dist = self.make(cls_name, temperature, a, dtype=dtype, **kwargs)
        self.torch.manual_seed(seed)
        x = dist.rsample(self.torch.Size(shape))
        lp = dist.log_prob(x)
        (g_a,) = self.torch.autograd.grad(lp.sum(), [a])
        return lp.detach().numpy().copy(), g_a.numpy().copy()


def _np_grad(grad, like):
    if grad is None:
        return np.zeros(tuple(like.shape))
    return grad.detach().numpy().copy()


# --- NumPyro -----------------------------------------------------------------------


class NumpyroBackend(Backend):
    """NumPyro, with every computation (sampling, scoring, gradients) run under ``jax.jit``
    as NumPyro's inference does: a jitted graph compiles once per shape, several times
    faster than the many per-primitive compilations of eager mode.  A distribution built
    with ``validate_args=True`` is scored eagerly, where its checks can raise."""

    name = "numpyro"
    outside_support_raises = False

    def __init__(self):
        import jax
        import jax.numpy as jnp

        import numpyro_concrete

        self.jax = jax
        self.jnp = jnp
        self.module = numpyro_concrete
        self._sample = jax.jit(
            lambda dist, key, shape: dist.sample_with_intermediates(key, shape),
            static_argnums=2,
        )
        self._score = jax.jit(self._log_prob)
        self._check = jax.jit(lambda dist, x: dist.support(x))
        self._jitted = functools.lru_cache(maxsize=None)(self._build)

    # float64 handling: see the module docstring.
    def _x64(self, dtype):
        if dtype == "float64":
            return self.jax.enable_x64(True)
        return contextlib.nullcontext()

    def _array(self, x, dtype):
        return self.jnp.asarray(np.asarray(x), dtype=getattr(self.jnp, dtype))

    def _arg(self, x, dtype):
        if x is None or isinstance(x, float | int | self.jax.Array):
            return x
        return self._array(x, dtype)

    def make(
        self,
        cls_name,
        temperature,
        logits=None,
        probs=None,
        *,
        dtype="float64",
        validate_args=None,
        **kwargs,
    ):
        cls = getattr(self.module, cls_name)
        with self._x64(dtype):
            return cls(
                self._arg(temperature, dtype),
                probs=self._arg(probs, dtype),
                logits=self._arg(logits, dtype),
                validate_args=validate_args,
                **kwargs,
            )

    def batch_shape(self, dist):
        return tuple(dist.batch_shape)

    def event_shape(self, dist):
        return tuple(dist.event_shape)

    def expand(self, dist, batch_shape):
        with self._x64(self.dtype(dist)):
            return dist.expand(tuple(batch_shape))

    def dtype(self, dist):
        leaves = [
            leaf
            for leaf in self.jax.tree_util.tree_leaves(dist)
            if self.jnp.issubdtype(getattr(leaf, "dtype", np.int32), self.jnp.floating)
        ]
        return "float64" if any(leaf.dtype == self.jnp.float64 for leaf in leaves) else "float32"

    def _key(self, seed):
        return self.jax.random.PRNGKey(seed)

    def sample(self, dist, shape=(), seed=0):
        with self._x64(self.dtype(dist)):
            x, intermediates = self._sample(dist, self._key(seed), tuple(shape))
        return Draw(value=np.array(x), handle=(x, intermediates))

    @staticmethod
    def _log_prob(dist, value, intermediates=None):
        # NumPyro's TransformedDistribution.log_prob takes the intermediates of its own
        # samples; a plain Distribution.log_prob takes the value only.
        params = inspect.signature(dist.log_prob).parameters
        if intermediates and "intermediates" in params:
            return dist.log_prob(value, intermediates=intermediates)
        return dist.log_prob(value)

    def log_prob(self, dist, value):
        dtype = self.dtype(dist)
        score = self._log_prob if dist._validate_args else self._score
        with self._x64(dtype):
            if isinstance(value, Draw):
                x, intermediates = value.handle
                return np.array(score(dist, x, intermediates))
            value = self._array(value, dtype)
            rows = (
                value.shape[0] if value.ndim == len(dist.batch_shape + dist.event_shape) + 1 else 0
            )
            if rows and not dist._validate_args:
                # quadrature asks for many sizes: pad to a power of two, one compile each
                size = max(64, 1 << (rows - 1).bit_length())
                padded = self.jnp.concatenate([value, self.jnp.repeat(value[:1], size - rows, 0)])
                return np.array(score(dist, padded))[:rows]
            return np.array(score(dist, value))

    def in_support(self, dist, value):
        dtype = self.dtype(dist)
        with self._x64(dtype):
            x = value.handle[0] if isinstance(value, Draw) else self._array(value, dtype)
            return np.array(self._check(dist, x))

    def _straight_through(self, dist):
        return isinstance(
            dist, self.module.ConcreteStraightThrough | self.module.BinaryConcreteStraightThrough
        )

    def log_space_value(self, dist, draw):
        # TransformedDistribution.sample_with_intermediates gives (x, [[y, None]]); a
        # straight-through sample gives (hard, [x, [[y, None]]]).
        _, intermediates = draw.handle
        if self._straight_through(dist):
            intermediates = intermediates[1]
        return np.array(intermediates[0][0])

    def relaxed_value(self, dist, draw):
        _, (relaxed, _) = draw.handle
        return np.array(relaxed)

    def pickle_round_trip(self, dist):
        # a float64 array unpickled with x64 off would come back as float32
        with self._x64(self.dtype(dist)):
            return pickle.loads(pickle.dumps(dist))

    def quantity(self, dist, name):
        with self._x64(self.dtype(dist)):
            attr = getattr(dist, name)
            return np.array(attr() if callable(attr) else attr)

    def _build(self, what, cls_name, kwargs, shape):
        """The jitted gradient function ``what`` for one class, its kwargs and sample shape."""
        cls = getattr(self.module, cls_name)
        kwargs = dict(kwargs)
        jax = self.jax

        if what == "log_prob":

            def f(a, t, v):
                lp = cls(t, logits=a, validate_args=False, **kwargs).log_prob(v)
                return lp.sum(), lp

            return jax.jit(jax.grad(f, argnums=(0, 1, 2), has_aux=True))
        if what == "sample":

            def f(a, t, w, key):
                x = cls(t, logits=a, **kwargs).rsample(key, shape)
                return (w * x).sum(), x

            return jax.jit(jax.grad(f, argnums=(0, 1), has_aux=True))

        def f(a, t, key):
            dist = cls(t, logits=a, **kwargs)
            x, intermediates = dist.sample_with_intermediates(key, shape)
            lp = self._log_prob(dist, x, intermediates)
            return lp.sum(), lp

        return jax.jit(jax.grad(f, has_aux=True))

    def grad_log_prob(self, cls_name, temperature, logits, value, *, dtype="float64", **kwargs):
        fn = self._jitted("log_prob", cls_name, tuple(sorted(kwargs.items())), None)
        with self._x64(dtype):
            args = [self._array(x, dtype) for x in (logits, temperature, value)]
            grads, lp = fn(*args)
            names = ("logits", "temperature", "value")
            return np.array(lp), {k: np.array(g) for k, g in zip(names, grads, strict=True)}

    def grad_sample(
        self, cls_name, temperature, logits, shape, seed, weights, *, dtype="float64", **kwargs
    ):
        fn = self._jitted("sample", cls_name, tuple(sorted(kwargs.items())), tuple(shape))
        with self._x64(dtype):
            args = [self._array(x, dtype) for x in (logits, temperature, weights)]
            (g_a, g_t), x = fn(*args, self._key(seed))
            return np.array(x), {"logits": np.array(g_a), "temperature": np.array(g_t)}

    def grad_log_prob_of_own_sample(
        self, cls_name, temperature, logits, shape, seed, *, dtype="float32", **kwargs
    ):
        fn = self._jitted("own", cls_name, tuple(sorted(kwargs.items())), tuple(shape))
        with self._x64(dtype):
            args = [self._array(x, dtype) for x in (logits, temperature)]
            g_a, lp = fn(*args, self._key(seed))
            return np.array(lp), np.array(g_a)
