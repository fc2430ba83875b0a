"""REBAR: the score function with the Concrete relaxation as control variate (Tucker,
Mnih, Maddison, Lawson & Sohl-Dickstein 2017)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
from jax import Array
from numpyro.distributions import constraints

from ..distributions.conditional import bernoulli_conditional, categorical_conditional
from ..plates import factor_dims
from .reads import check_differentiable_reads
from .traces import (
    DiscreteSampler,
    DiscreteSite,
    LogitsProbe,
    RelaxedSampler,
    costs,
    discrete_pass,
    relaxed_pass,
)
from .tuning import TunedELBO

__all__ = ["RebarELBO"]

#: what the tuned quantities descend the variance of the estimate for
TUNE_ON = ("parameters", "logits")


def conditional_point(rng_key: Array, site: DiscreteSite) -> Array:
    """``z~ ~ p(z | b)`` for a site of the discrete pass (``conditional.py``)."""
    if site.kind == "bernoulli":
        return bernoulli_conditional(rng_key, site.logits, site.value)
    b = site.value
    if site.kind == "categorical":
        b = jax.nn.one_hot(b, site.logits.shape[-1], dtype=site.logits.dtype)
    return categorical_conditional(rng_key, site.logits, b)


def fixed_logits(sites: dict[str, DiscreteSite]) -> bool:
    """Whether the control variate scores the guide's relaxed values with the logits held
    fixed: where the guide has one discrete site, whose logits then read no relaxed value.
    ``c`` is then ``f(sigma_lam(z))`` with ``log q`` continued at logits fixed at their
    value, a function of ``z`` alone in the parameters, and REBAR is unbiased for any
    function of ``z`` (Tucker et al. 2017, Eq. 6; Grathwohl et al. 2018, Eq. 5): the terms
    this drops, the derivative of ``c`` in the logits at fixed ``z``, have the same mean at
    ``z`` and at ``z~`` (both ``~ p(z)``) and only add variance.  Where a site's logits read
    another's relaxed value, holding them would also drop the derivative along ``z``."""
    return len(sites) == 1


class ControlVariateELBO(TunedELBO):
    r"""The score-function gradient of the discrete ELBO with a control variate ``c`` of
    the relaxed point, corrected to stay unbiased (Tucker et al. 2017, Eq. 6; Grathwohl et
    al. 2018, Eq. 5):

    .. math::
        g = [f(b) - c(\tilde z)] \nabla \log q(b) + \nabla f(b) + \nabla c(z)
            - \nabla c(\tilde z),

    ``z`` the continuous sample that ``b = H(z)`` rounds, ``z~ ~ p(z | b)`` reparameterised
    with ``b`` fixed.  ``nabla f(b)`` leaves out the zero-mean score of ``log q(b)``; model
    parameters get ``nabla f(b)`` alone (the correction has zero mean for them).  With
    ``tune``, the control variate's own quantities descend the gradient of the estimate's
    second moment ``sum g^2``, which is the variance up to a constant (the mean does not
    depend on them): of the estimate for the logits of the guide's discrete sites, each
    element's (``tune_on="logits"``, the default: the distribution's parameters, as in
    Grathwohl et al. 2018, Sec. 3.3; the second-order pass stops at the logits instead of
    running through the guide's network), or for the guide's parameters
    (``tune_on="parameters"``).
    """

    def __init__(
        self, num_particles: int, vectorize_particles: bool, tune_on: str = "logits"
    ) -> None:
        if tune_on not in TUNE_ON:
            raise ValueError(
                f"{type(self).__name__}: tune_on must be one of {TUNE_ON}, got {tune_on!r}."
            )
        super().__init__(num_particles, vectorize_particles)
        self.tune_on = tune_on

    def _setup(self, params: dict, sites: dict[str, DiscreteSite]) -> dict:
        """The temperature of each site, from the parameters (:meth:`_tuned`)."""
        raise NotImplementedError

    def _control_variate(
        self, relaxed_elbo: Array, values: dict[str, Array], dims: set, ndim: int, params: dict
    ) -> Array:
        """``c`` per element, from ``f`` at the relaxed point and the relaxed values."""
        raise NotImplementedError

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        name = type(self).__name__
        hard_key, relaxed_key, conditional_key = jax.random.split(rng_key, 3)
        hard = DiscreteSampler(rng_key=hard_key, estimator=name)
        model_trace, guide_trace = discrete_pass(model, guide, args, kwargs, params, hard_key, hard)
        dims, ndim = factor_dims(model_trace, guide_trace)
        cost = costs(model_trace, guide_trace, set(hard.sites), dims, ndim)
        temperature = self._setup(params, hard.sites)
        # Model parameters are held fixed at the relaxed points: their estimate is nabla f(b).
        in_guide = {k for k, s in guide_trace.items() if s["type"] == "param"}
        relaxed_params = {
            k: v if k in in_guide else jax.lax.stop_gradient(v) for k, v in params.items()
        }

        def relaxed(points: dict[str, Array], given: dict | None = None, previous=guide_trace):
            sampler = RelaxedSampler(
                sites=hard.sites,
                points=points,
                temperature=temperature,
                given=given,
                fixed_logits=fixed_logits(hard.sites),
            )
            traces = relaxed_pass(
                model, guide, args, kwargs, relaxed_params, relaxed_key, sampler, name, previous
            )
            return traces, sampler.values

        def control_variate(traces: tuple[dict, dict], values: dict[str, Array]) -> Array:
            relaxed_elbo = costs(*traces, set(hard.sites), dims, ndim).value
            return self._control_variate(relaxed_elbo, values, dims, ndim, params)

        at = {k: s.z for k, s in hard.sites.items()}
        traces, values = relaxed(at)
        # how model and guide read the relaxed values, traced as functions of them (under
        # jit once per compilation); the guide runs again there
        check_differentiable_reads(lambda given: relaxed(at, given, None)[0], values, name)
        at_z = control_variate(traces, values)
        keys = jax.random.split(conditional_key, len(hard.sites))
        at_conditional = control_variate(
            *relaxed(
                {
                    k: conditional_point(key, s)
                    for key, (k, s) in zip(keys, hard.sites.items(), strict=True)
                }
            )
        )
        score = sum(cost.score.values(), jnp.zeros(()))
        value = jax.lax.stop_gradient(cost.value)
        surrogate = value * score + cost.direct + at_z - at_conditional
        # -c(z~) d log q, with c(z~) differentiable in its own quantities but not in the
        # guide's parameters: the second factor is zero in value.
        surrogate = surrogate + at_conditional * (jax.lax.stop_gradient(score) - score)
        return jnp.sum(cost.value), jnp.sum(surrogate)

    def loss(
        self, rng_key: Array, param_map: dict, model: Callable, guide: Callable, *args, **kwargs
    ) -> Array:
        """The negative discrete ELBO in value; in gradient, ``-g`` for the guide's
        parameters, ``-nabla f(b)`` for the model's and, when tuning, the gradient of
        ``sum g^2`` for the tuned quantities."""
        if not self.tune:
            return super().loss(rng_key, param_map, model, guide, *args, **kwargs)
        declared = getattr(guide, "declared", None)
        if declared is not None and declared.estimator is not type(self):
            raise ValueError(
                f"{type(self).__name__}(tune=True) trains a guide from "
                f"{declared.estimator.__name__}.tunable, which declares that estimator's "
                "quantities: build the SVI with guide=loss.tunable(guide) of this loss."
            )
        tuned = (set() if declared is None else declared.tuned) & set(param_map)
        fixed = {k: v for k, v in param_map.items() if k not in tuned}

        def estimate(fixed_params: dict, deltas: dict | None) -> tuple[Array, Array]:
            params = dict(fixed_params, **{k: param_map[k] for k in tuned})
            probed = guide if deltas is None else LogitsProbe(guide, deltas)
            value, surrogate = self._estimate(rng_key, params, model, probed, args, kwargs)
            return surrogate, value

        deltas = None
        if self.tune_on == "logits":  # zeros of the logits' shapes, traced for them only
            shapes = {}
            probed = LogitsProbe(guide, shapes=shapes)
            jax.eval_shape(lambda: self._estimate(rng_key, param_map, model, probed, args, kwargs))
            deltas = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
        stop = jax.lax.stop_gradient
        (_, value), (grads, delta_grads) = jax.value_and_grad(
            estimate, argnums=(0, 1), has_aux=True
        )(stop(fixed), deltas)
        linear = sum(jnp.sum((v - stop(v)) * stop(grads[k])) for k, v in fixed.items())
        if deltas is not None:
            moment = sum(jnp.sum(g**2) for g in delta_grads.values())
        else:
            own = set() if declared is None else declared.guide
            moment = sum(jnp.sum(grads[k] ** 2) for k in own - tuned if k in grads)
        return -(stop(value) + linear) + moment - stop(moment)


class RebarELBO(ControlVariateELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the REBAR
    gradient (Tucker et al. 2017, Eq. 6): :class:`ControlVariateELBO` with
    ``c = eta f(sigma_lam(.))``, the ELBO's integrand at the relaxed point
    ``sigma_lam(z) = sigmoid(z / lam)`` (Bernoulli) / ``softmax(z / lam)`` (categorical), the
    discrete log-masses continued there.  Unbiased for any ``eta`` and ``lam``.  One
    ``eta`` scales the whole control variate, which keeps the estimator exact for a guide
    whose sites read each other's values; each site has its own ``lam``.

    The model is evaluated at relaxed values of its discrete sites: it must accept a point
    of (0, 1) for a ``Bernoulli`` and of the simplex for a categorical (read a
    ``Categorical`` with :func:`~numpyro_concrete.select`); otherwise ``ValueError``.

    :param num_particles: particles averaged.
    :param temperature: the relaxation's temperature ``lam`` (its initial value if tuned).
    :param eta: the control variate's scale (its initial value if tuned).
    :param tune: learn ``eta`` and ``lam``, as ``numpyro.param`` sites ``"rebar_eta"`` and
        ``"{site}_rebar_temperature"``, by descending the estimator's variance; they are
        declared by the guide that :meth:`tunable` returns, so build
        ``SVI(model, loss.tunable(guide), optim, loss)`` and ``svi.update`` moves them.
    :param vectorize_particles: draw the particles with ``jax.vmap`` (else ``lax.map``).
    :param tune_on: tuning, descend the variance of the estimate for the ``"logits"`` of
        the guide's discrete sites (the default: cheaper, and as low a variance after
        tuning on the sigmoid belief net) or for its ``"parameters"``.
    """

    def __init__(
        self,
        num_particles: int = 1,
        temperature: float = 0.5,
        eta: float = 1.0,
        tune: bool = True,
        vectorize_particles: bool = True,
        tune_on: str = "logits",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"RebarELBO: temperature must be > 0, got {temperature!r}.")
        super().__init__(num_particles, vectorize_particles, tune_on)
        self.temperature, self.eta, self.tune = float(temperature), float(eta), tune

    def _declare(self, sites: dict[str, tuple[int, ...]]) -> None:
        numpyro.param("rebar_eta", jnp.asarray(self.eta))
        for k in sites:
            numpyro.param(
                f"{k}_rebar_temperature",
                jnp.asarray(self.temperature),
                constraint=constraints.positive,
            )

    def _setup(self, params: dict, sites: dict[str, DiscreteSite]) -> dict:
        self._tuned(params, "rebar_eta", self.eta)  # declared, or a clear error
        return {k: self._tuned(params, f"{k}_rebar_temperature", self.temperature) for k in sites}

    def _control_variate(
        self, relaxed_elbo: Array, values: dict[str, Array], dims: set, ndim: int, params: dict
    ) -> Array:
        return (params["rebar_eta"] if self.tune else self.eta) * relaxed_elbo
