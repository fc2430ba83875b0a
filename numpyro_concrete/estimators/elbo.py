"""The base of the estimators: an ``ELBO`` whose loss is the negative discrete objective in
value and the negative gradient estimate in gradient (a surrogate's), averaged over
particles drawn with ``jax.vmap`` (default) or ``jax.lax.map``."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from numpyro.infer.elbo import ELBO

__all__ = ["DiscreteELBO"]


class DiscreteELBO(ELBO):
    """An estimator of the gradient of a discrete objective.

    Subclasses implement :meth:`_particle`, which returns the objective's estimate and a
    surrogate whose gradient is the gradient estimate, both summed over the elements of
    one pass; this class averages them over the particles and gives ``loss`` and
    ``tunable``.
    """

    can_infer_discrete = True
    #: whether one call of :meth:`_particle` takes all ``num_particles`` samples, stacked
    #: on a sample dim (a ``K``-sample objective, leave-one-out baselines, NVIL's moments
    #: over a step's samples): it is then called once, and nothing is averaged here
    stacks_particles = False

    def __init__(self, num_particles: int = 1, vectorize_particles: bool = True) -> None:
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(
                f"{type(self).__name__}: num_particles must be a positive int, "
                f"got {num_particles!r}."
            )
        super().__init__(num_particles=num_particles, vectorize_particles=vectorize_particles)

    def tunable(self, guide: Callable) -> Callable:
        """The guide to train with this loss, ``SVI(model, loss.tunable(guide), optim,
        loss=loss)``: ``guide`` itself for an estimator that learns nothing of its own;
        those that do (REBAR, RELAX) return a guide that declares what they learn, since
        ``SVI.init`` creates parameters only for the sites of the model and the guide."""
        return guide

    # The hook of Pyro's DiscreteELBO with the key and the parameters first, as NumPyro's
    # ELBO.loss hands them (Pyro draws from its global seed and reads the param store).
    def _particle(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        """``(value, surrogate)`` of one particle: the objective's estimate, and an array
        whose gradient is the gradient estimate, from passes of ``model`` and ``guide``
        drawn from ``rng_key`` (all ``num_particles`` samples when
        :attr:`stacks_particles`)."""
        raise NotImplementedError

    def _estimate(
        self, rng_key: Array, params: dict, model: Callable, guide: Callable, args, kwargs
    ) -> tuple[Array, Array]:
        """The objective and the surrogate, averaged over the particles (one particle: the
        key as given and no particle dimension, as NumPyro's own ELBOs, which keeps a key
        split and ``vmap``'s batch of one out of the compiled step)."""
        if self.num_particles == 1 or self.stacks_particles:
            return self._particle(rng_key, params, model, guide, args, kwargs)
        keys = jax.random.split(rng_key, self.num_particles)
        value, surrogate = self.vectorize_particles_fn(
            lambda key: self._particle(key, params, model, guide, args, kwargs), keys
        )
        return jnp.mean(value), jnp.mean(surrogate)

    def loss(
        self, rng_key: Array, param_map: dict, model: Callable, guide: Callable, *args, **kwargs
    ) -> Array:
        """The negative objective in value, the negative gradient estimate in gradient."""
        return negated(*self._estimate(rng_key, param_map, model, guide, args, kwargs))


def negated(value: Array, surrogate: Array) -> Array:
    """``-value`` in value, ``-d surrogate`` in gradient: the loss of an estimate."""
    stop = jax.lax.stop_gradient
    return -(stop(value) + surrogate - stop(surrogate))
