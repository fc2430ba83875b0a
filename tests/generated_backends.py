"""Model and guide of a generated spec (``generated_models.py``), written once over both
backends through :class:`Ops`, and one adapter per backend for ``generated_suite.py``:
numpy parameters in, draws of an estimator's gradient out (float32)."""

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.generated_models import SCALE, N, Site, Spec
from tests.xla_options import FAST_COMPILE

__all__ = ["OBJECTIVE", "GeneratedBackend", "NumpyroGenerated", "Ops", "PyroGenerated", "program"]

#: the key of the objective's estimates (the loss negated) among the gradient draws
OBJECTIVE = "objective"


@dataclass(frozen=True)
class Ops:
    """What a model needs from a backend: primitives, handlers, distributions, array ops."""

    sample: Callable
    plate: Callable
    scale: Callable
    mask: Callable
    bernoulli: Callable
    categorical: Callable
    one_hot: Callable
    normal: Callable
    select: Callable
    where: Callable
    round: Callable
    argmax: Callable
    exp: Callable
    is_float: Callable
    array: Callable


def program(
    spec: Spec, ops: Ops, param: Callable, likelihood: Callable, replicas: int = 0
) -> tuple:
    """``(model, guide)`` of ``spec``, both taking ``y``; ``param(name)`` gives a prior's or
    the guide's parameter, ``likelihood(name)`` one of the observation's.  With
    ``replicas``, both run in a plate of that many independent copies enclosing the rest
    (objective and gradient the sum of the copies')."""
    nested = spec.nested
    keep = ops.array(np.arange(N) < N - 1)  # the mask: the last point's observation out

    def plates():
        return ops.plate(
            "data", N, subsample_size=1 if spec.subsample else None, dim=-2 if nested else -1
        )

    def scaled():
        stack = contextlib.ExitStack()
        if replicas:
            stack.enter_context(ops.plate("replicas", replicas, dim=-3 if nested else -2))
        if spec.scale:
            stack.enter_context(ops.scale(SCALE))
        return stack

    def distribution(site: Site, logits):
        if site.family == "bernoulli":
            return ops.bernoulli(logits).to_event(1)
        return (ops.categorical if site.family == "categorical" else ops.one_hot)(logits)

    def by_select(table, z):
        return ops.select(table, z[..., None, :] if ops.is_float(z) else z[..., None])

    def read(site: Site, z):
        table = likelihood(spec.tables(site)[0])
        if site.read == "arithmetic":
            return z @ table
        if site.read == "round":
            return ops.round(z) @ table
        if site.read == "where":
            return ops.where(z[..., None] > 0.5, table, likelihood(spec.tables(site)[1])).sum(-2)
        if site.read == "select":
            return by_select(table, z)
        return table[ops.argmax(z) if site.read == "argmax" else z]

    def inner():
        return ops.plate("inner", 2, dim=-1) if nested else contextlib.nullcontext()

    def observe(values: dict, y, kept):
        mean = sum(read(s, values[s.name]) for s in spec.sites)
        if spec.continuous:
            mean = mean + values["w"][..., None] * likelihood("w_coef")
        masked = ops.mask(kept[:, None] if nested else kept) if spec.mask else None
        with masked or contextlib.nullcontext():
            ops.sample("y", ops.normal(mean, 1.0).to_event(1), obs=y)

    def model(y):
        values = {}

        def sites(level: str):
            for s in spec.sites:
                if s.level == level:
                    prior = distribution(s, param(f"{s.name}_prior"))
                    values[s.name] = ops.sample(s.name, prior)

        with scaled():
            sites("global")
            with plates() as idx:
                if spec.continuous:
                    values["w"] = ops.sample("w", ops.normal(0.0, 1.0))
                sites("data")
                with inner():
                    sites("inner")
                    observe(values, y[idx], keep[idx])

    def guide(y):
        values = {}

        def logits(s: Site):
            out = param(f"{s.name}_logits")
            if s.parent is not None:
                link, parent = param(f"{s.name}_link"), values[s.parent]
                categorical = spec.site(s.parent).family == "categorical"
                out = out + (by_select(link.T, parent) if categorical else parent @ link)
            if spec.reader_of_w() == s:
                out = out + values["w"][..., None] * param("w_link")
            return out

        def sites(level: str):
            for s in spec.sites:
                if s.level == level:
                    values[s.name] = ops.sample(s.name, distribution(s, logits(s)))

        with scaled():
            sites("global")
            with plates():
                if spec.continuous:
                    scale = ops.exp(param("w_log_scale"))
                    values["w"] = ops.sample("w", ops.normal(param("w_loc"), scale))
                sites("data")
                with inner():
                    sites("inner")

    return model, guide


class GeneratedBackend(abc.ABC):
    name: str
    module: Any  # this package
    infer: Any  # the backend's infer module, for its losses

    @abc.abstractmethod
    def gradient_draws(
        self, spec: Spec, params: dict, y: np.ndarray, loss_name: str, options: dict, samples: int
    ) -> dict[str, np.ndarray]:
        """Independent estimates of the objective's gradient (ascent direction) with respect
        to every parameter of ``params``, ``(draws, *shape)`` each, and of the objective
        (:data:`OBJECTIVE`, the loss negated, ``(draws,)``), from ``samples`` draws of
        the loss ``loss_name(**options)`` (this package's, else the backend's ``infer``'s) in
        all; a draw may average several particles."""

    def loss_class(self, loss_name: str):
        return getattr(self.module, loss_name, None) or getattr(self.infer, loss_name)


# ----------------------------------------------------------------------------- Pyro


class PyroGenerated(GeneratedBackend):
    """Draws of the mean of ``particles`` vectorised particles each (VIMCO: of as many
    replicas of model and guide, each with its ``K`` samples vectorised)."""

    name = "pyro"
    particles = 50

    def __init__(self) -> None:
        import pyro
        import torch

        import pyro_concrete

        self.pyro, self.torch, self.module, self.infer = pyro, torch, pyro_concrete, pyro.infer
        dist = pyro.distributions
        self.ops = Ops(
            sample=pyro.sample,
            plate=pyro.plate,
            scale=lambda s: pyro.poutine.scale(scale=s),
            mask=lambda m: pyro.poutine.mask(mask=m),
            bernoulli=lambda logits: dist.Bernoulli(logits=logits),
            categorical=lambda logits: dist.Categorical(logits=logits),
            one_hot=lambda logits: dist.OneHotCategorical(logits=logits),
            normal=lambda loc, scale: dist.Normal(loc, torch.as_tensor(scale)),
            select=pyro_concrete.select,
            where=torch.where,
            round=torch.round,
            argmax=lambda z: z.argmax(-1),
            exp=torch.exp,
            is_float=torch.is_floating_point,
            array=torch.as_tensor,
        )

    def _tensor(self, value: np.ndarray):
        return self.torch.tensor(value, dtype=self.torch.float32)

    def _program(self, spec: Spec, params: dict, replicas: int = 0) -> tuple:
        """``(model, guide, leaves)``: the leaf tensor of every parameter, by name."""
        pyro = self.pyro
        held = spec.likelihood_params()
        leaves = {
            k: pyro.param(k, self._tensor(v)).unconstrained()
            for k, v in params.items()
            if k not in held or spec.param_style == "param"
        }
        likelihood = pyro.param
        if spec.param_style == "leaf":
            leaves.update({k: self._tensor(params[k]).requires_grad_() for k in held})
            likelihood = leaves.__getitem__
        elif spec.param_style == "module":
            module = self._module({k: self._tensor(params[k]) for k in held})
            leaves.update({k: getattr(module, f"{k}_unconstrained") for k in held})
            likelihood = module.table
        return (*program(spec, self.ops, pyro.param, likelihood, replicas), leaves)

    def _module(self, tensors: dict):
        PyroModule, PyroParam = self.pyro.nn.PyroModule, self.pyro.nn.PyroParam

        class Likelihood(PyroModule):
            """The observation's parameters as ``PyroParam``s, read through :meth:`table`
            (a method other than ``forward``: outside the module's Pyro context, so no
            ``param`` site records them)."""

            def __init__(self) -> None:
                super().__init__()
                for k, v in tensors.items():
                    setattr(self, k, PyroParam(v))

            def table(self, name: str):
                return getattr(self, name)

        return Likelihood()

    def gradient_draws(self, spec, params, y, loss_name, options, samples):
        pyro = self.pyro
        pyro.clear_param_store()
        pyro.set_rng_seed(spec.seed)
        # VIMCO's K samples are the bound's: its estimates are batched as replicas instead
        replicas = self.particles if loss_name == "VimcoELBO" else 0
        model, guide, leaves = self._program(spec, params, replicas)
        options = dict(options, vectorize_particles=True)
        if not replicas:
            options["num_particles"] = self.particles
        loss = self.loss_class(loss_name)(**options)
        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        y = self._tensor(y)
        out = {k: [] for k in (*params, OBJECTIVE)}
        per_draw = max(replicas, 1)
        for _ in range(samples // self.particles):
            out[OBJECTIVE].append(-loss.loss_and_grads(model, guide, y) / per_draw)
            for k, leaf in leaves.items():
                grad = np.zeros(leaf.shape) if leaf.grad is None else -leaf.grad.numpy()
                out[k].append(grad / per_draw)
                leaf.grad = None
        return {k: np.stack(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- NumPyro


class NumpyroGenerated(GeneratedBackend):
    """One estimate per key, ``jax.vmap``-ed over the keys, under one ``jax.jit`` with the
    initialisation (eagerly, NumPyro's set-up compiles one program per operation)."""

    name = "numpyro"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp
        import numpyro
        from numpyro import handlers

        import numpyro_concrete

        self.jax, self.numpyro, self.module, self.infer = (
            jax,
            numpyro,
            numpyro_concrete,
            numpyro.infer,
        )
        dist = numpyro.distributions
        self.ops = Ops(
            sample=numpyro.sample,
            plate=numpyro.plate,
            scale=lambda s: handlers.scale(scale=s),
            mask=lambda m: handlers.mask(mask=m),
            bernoulli=lambda logits: dist.Bernoulli(logits=logits),
            categorical=lambda logits: dist.Categorical(logits=logits),
            one_hot=lambda logits: numpyro_concrete.OneHotCategorical(logits=logits),
            normal=dist.Normal,
            select=numpyro_concrete.select,
            where=jnp.where,
            round=jnp.round,
            argmax=lambda z: jnp.argmax(z, -1),
            exp=jnp.exp,
            is_float=lambda z: jnp.issubdtype(z.dtype, jnp.floating),
            array=jnp.asarray,
        )

    def gradient_draws(self, spec, params, y, loss_name, options, samples):
        jax, jnp = self.jax, self.jax.numpy
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        initial = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}

        def param(name):
            return self.numpyro.param(name, initial[name])

        model, guide = program(spec, self.ops, param, param)
        loss = self.loss_class(loss_name)(**options)
        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        y = jnp.asarray(y, jnp.float32)
        svi = SVI(model, guide, Adam(0.01), loss)

        def draws(init_key, keys):
            state = svi.init(init_key, y)
            # as SVI.update passes them: the parameters and the mutable state (NVIL's moments)
            param_map = {**svi.get_params(state), **(state.mutable_state or {})}

            def grad(key):
                def value(own):  # the loss as a function of the spec's parameters
                    return loss.loss(key, {**param_map, **own}, model, guide, y)

                v, g = jax.value_and_grad(value)({k: param_map[k] for k in params})
                return {OBJECTIVE: -v, **{k: -g[k] for k in params}}

            return jax.vmap(grad)(keys)

        keys = jax.random.split(jax.random.PRNGKey(spec.seed + 1), samples)
        out = jax.jit(draws, compiler_options=FAST_COMPILE)(jax.random.PRNGKey(spec.seed), keys)
        return {k: np.asarray(v) for k, v in out.items()}
