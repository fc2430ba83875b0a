"""Double control variates: the leave-one-out baseline and a first-order expansion of the
model around the other samples (Titsias & Shi 2022)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
from jax import Array

from .linearised import LinearisedELBO

__all__ = ["DoubleCvELBO"]


class DoubleCvELBO(LinearisedELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the double
    control variates gradient (Titsias & Shi 2022) for the logits ``l`` of the
    guide's ``Bernoulli`` sites, ``theta = sigmoid(l)``, from ``K >= 2`` samples per data
    point (:class:`LinearisedELBO`: ``d_k`` the model's derivative at ``b_k``):

    .. math::
        h_j = f_j + \alpha (b_j - \theta) \cdot \bar d_{-j}, \qquad
        c_k = \frac{1}{K-1} \sum_{j \ne k} h_j,

        g = \frac1K \sum_k \big(h_k - c_k\big) (b_k - \theta)
            - \alpha \, \theta (1 - \theta) \odot \frac1K \sum_k d_k,

    ``d_{-k}`` the mean of the other samples' ``d_j``.  ``c_k`` is the leave-one-out
    baseline of the corrected ``h``; ``alpha (b_k - theta) . d_{-k}``, linear in ``b_k``
    with a slope independent of it, is the second control variate, and the last term its
    exact expectation (``E[(b - theta)(b - theta)^T] = diag(theta (1 - theta))``), which
    makes the estimate unbiased for any ``alpha``.  (With continuous guide sites, each
    sample's ``theta_k`` and ``theta_k (1 - theta_k) d_{-k}`` in the mean.)  The model's
    parameters, and the reparameterised continuous sites, get ``(1/K) sum_k nabla f_k``
    (the zero-mean score of ``log q`` left out), as RLOO's.  ``alpha = 0`` is RLOO.

    :param num_particles: ``K >= 2``, the samples per data point.
    :param alpha: the second control variate's weight (its initial value if tuned).
    :param tune: learn ``alpha``, the ``numpyro.param`` site ``"doublecv_alpha"``, by
        descending the second moment of the estimate of the gradient with respect to the
        logits; it is declared by the guide that :meth:`tunable` returns, so build
        ``SVI(model, loss.tunable(guide), optim, loss)``.
    :param vectorize_particles: draw the samples with ``jax.vmap`` (else ``lax.map``).
    """

    def __init__(
        self,
        num_particles: int = 2,
        alpha: float = 0.0,
        tune: bool = True,
        vectorize_particles: bool = True,
    ) -> None:
        super().__init__(num_particles, tune, vectorize_particles)
        self.alpha = float(alpha)

    def _declare(self, sites: dict[str, tuple[int, ...]]) -> None:
        numpyro.param("doublecv_alpha", jnp.asarray(self.alpha))

    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        stop = jax.lax.stop_gradient
        alpha = self._tuned(params, "doublecv_alpha", self.alpha)
        samples, _, _, kept = self._samples(rng_key, params, model, guide, args, kwargs)
        f, logits = samples.value, kept["logits"]
        theta = jax.nn.sigmoid(stop(logits))
        spread = kept["value"] - theta
        slope = self._others(kept["derivative"])
        h = stop(f) + alpha * jnp.sum(spread * slope, -1)
        signal = h - self._others(h)
        estimate = jnp.mean(signal[..., None] * spread - alpha * theta * (1 - theta) * slope, 0)
        score = sum(samples.score.values(), jnp.zeros(()))
        surrogate = jnp.sum(jnp.mean(stop(signal) * score + samples.direct, 0))
        # -alpha theta (1 - theta) d_{-k} for the logits: the derivative of theta
        surrogate = surrogate - stop(alpha) * jnp.sum(jnp.mean(slope * jax.nn.sigmoid(logits), 0))
        return jnp.sum(jnp.mean(f, 0)), surrogate - self._variance(estimate)
