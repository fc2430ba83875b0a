"""Whether model and guide read the relaxed values of the discrete sites differentiably.

REBAR's and RELAX's control variate evaluates the model at relaxed values ``sigma_lam(z)``
of the discrete sites and differentiates it along ``z``.  A program that reads a value
through a step function (``z.argmax(-1)`` to index a table, ``jnp.where(z > 0.5, ...)``,
``jnp.round(z)``) computes ``f(b)`` at the relaxed point, whose derivative along ``z`` is
zero: the pathwise terms of the estimator vanish and its gradient is biased, silently.

The check traces model and guide at the relaxed point to jaxprs, with one site's relaxed
value as the input, twice: the log densities themselves, and their JVP along that value.
A log density of another site (``f``'s terms, the guide's included) that is computed from
the value but whose tangent is not (JAX's derivative of a step is a symbolic zero) makes
:func:`check_differentiable_reads` raise ``ValueError``.  It runs when the loss is traced,
so under ``jit`` once per compilation.  What it cannot see: a program that reads a value
both ways inside one log density (a step and a differentiable read of the same site),
where the derivative is that of the differentiable read only.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.extend.core import ClosedJaxpr, Jaxpr, Var
from numpyro.handlers import condition, replay, seed, substitute, trace

from ..distributions.wrappers import base_of
from .traces import DiscreteSite, subsample_sites

__all__ = ["check_differentiable_reads", "check_independent", "reads_its_inputs"]


def reads_its_inputs(fn: Callable, inputs) -> object:
    """Which outputs of ``fn`` (a pytree, as ``fn(inputs)`` returns) are computed from
    ``inputs``: a walk through the equations of its jaxpr.  JAX has no public function for
    this data dependence; the jaxpr and its ``Var`` are those of ``jax.make_jaxpr`` and
    ``jax.extend.core``.  The walk follows calls into their jaxprs (``jit``, custom
    derivatives, ``remat``); any other equation with an input that depends makes all its
    outputs depend (conservative inside loops and conditionals)."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(inputs)
    jaxpr = closed.jaxpr
    flags = _walk(jaxpr, [True] * len(jaxpr.invars))
    return jax.tree.unflatten(jax.tree.structure(shapes), flags)


def _walk(jaxpr: Jaxpr, depends: list[bool]) -> list[bool]:
    """For each output of ``jaxpr``, whether it is computed from an input flagged in
    ``depends``."""
    reached = {v for v, d in zip(jaxpr.invars, depends, strict=True) if d}

    def dep(v) -> bool:
        return isinstance(v, Var) and v in reached

    for eqn in jaxpr.eqns:
        inner = _called(eqn)
        if inner is not None:
            outs = _walk(inner, [dep(v) for v in eqn.invars])
        else:
            outs = [any(dep(v) for v in eqn.invars)] * len(eqn.outvars)
        reached.update(v for v, d in zip(eqn.outvars, outs, strict=True) if d)
    return [dep(v) for v in jaxpr.outvars]


def _called(eqn) -> Jaxpr | None:
    """The jaxpr that ``eqn`` calls with its own inputs and outputs, if any."""
    for param in eqn.params.values():
        inner = param.jaxpr if isinstance(param, ClosedJaxpr) else param
        if (
            isinstance(inner, Jaxpr)
            and len(inner.invars) == len(eqn.invars)
            and len(inner.outvars) == len(eqn.outvars)
        ):
            return inner
    return None


def check_differentiable_reads(
    relaxed_pass: Callable[[dict[str, Array]], tuple[dict, dict]],
    values: dict[str, Array],
    estimator: str,
) -> None:
    """Raise ``ValueError`` naming a discrete site whose relaxed value a log density of
    another site reads without a derivative.

    :param relaxed_pass: runs a relaxed pass of model and guide in which each discrete site
        takes the value given to it, returning ``(model_trace, guide_trace)`` with log
        densities computed.
    :param values: the relaxed values by site, at which the passes are traced.
    :param estimator: the calling estimator's name, for the message.
    """
    for name, value in values.items():

        def terms(v: Array, name: str = name) -> list[Array]:
            traces = relaxed_pass({**values, name: v})
            return [
                jnp.sum(site["log_prob"])
                for tr in traces
                for other, site in tr.items()
                if site["type"] == "sample" and other != name
            ]

        def tangents(t: Array, terms=terms, value: Array = value) -> list[Array]:
            return jax.jvp(terms, (value,), (t,))[1]

        read, moved = reads_its_inputs(terms, value), reads_its_inputs(tangents, value)
        if any(r and not m for r, m in zip(read, moved, strict=True)):
            raise ValueError(_step_message(estimator, name))


def check_independent(
    guide: Callable,
    args: tuple,
    kwargs: dict,
    params: dict,
    rng_key: Array,
    sites: dict[str, DiscreteSite],
    guide_trace: dict,
    estimator: str,
    alternatives: str,
) -> None:
    """``ValueError`` if the logits of a discrete site of ``guide`` read the value of a
    discrete site (an estimator that needs the sites independent given the data): the
    guide's program with the values of ``sites`` as inputs (and the data points of
    ``guide_trace``), traced to a jaxpr.

    :param estimator: the calling estimator's name, for the message.
    :param alternatives: the estimators that take such a guide, for the message.
    """
    values = {name: site.value for name, site in sites.items()}
    guide = replay(guide, trace=subsample_sites(guide_trace))

    def logits(values: dict) -> dict:
        run = condition(substitute(seed(guide, rng_key), data=params), data=values)
        tr = trace(run).get_trace(*args, **kwargs)
        return {name: base_of(tr[name]["fn"]).logits for name in values}

    for name, depends in reads_its_inputs(logits, values).items():
        if depends:
            raise ValueError(
                f"{estimator}: the logits of guide site {name!r} depend on the value of "
                "another discrete site (the guide computes them from it). "
                f"{estimator} needs the guide's discrete sites independent given the data; "
                f"use {alternatives} for a hierarchical guide."
            )


def _step_message(estimator: str, name: str) -> str:
    return (
        f"{estimator}: the value of discrete site {name!r} is read through a step function "
        "(argmax, a comparison, round, ...): at a real-valued point the model computes "
        "f(b) itself, with a derivative of zero, and the estimator's terms built from that "
        "derivative vanish (REBAR's and RELAX's pathwise terms: their gradient is biased). "
        "Read the value with arithmetic "
        "(numpyro_concrete.select(table, z) for a categorical, z * a + (1 - z) * b for a "
        "Bernoulli), or use DisarmELBO or VimcoELBO, which evaluate the model at discrete "
        "values only."
    )
