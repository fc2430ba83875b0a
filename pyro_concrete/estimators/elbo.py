"""The base of the estimators: an ``ELBO`` whose loss is the discrete objective and whose
gradient is a surrogate's, averaged over particles drawn in a loop or in one vectorised
pass (a leftmost particle plate, as ``Trace_ELBO(vectorize_particles=True)``)."""

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from pyro.infer import ELBO

__all__ = ["DiscreteELBO"]


class DiscreteELBO(ELBO):
    """An estimator of the gradient of a discrete objective.

    Subclasses implement :meth:`_particle`, which returns the objective's estimate and a
    surrogate whose gradient is the gradient estimate, both summed over the elements (and
    the vectorised particles) of one pass.
    """

    def __init__(self, num_particles: int = 1, vectorize_particles: bool = False) -> None:
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(
                f"{type(self).__name__}: num_particles must be a positive int, "
                f"got {num_particles!r}."
            )
        super().__init__(num_particles=num_particles, vectorize_particles=vectorize_particles)
        #: the guides stepped with each model (model -> guides), for the checks of a first step
        self._stepped = weakref.WeakKeyDictionary()
        #: whether the step being taken is the first of its model and guide
        self._first_step = True

    def tunable(self, guide: Callable) -> Callable:
        """The guide to train with this loss, ``SVI(model, loss.tunable(guide), optim,
        loss=loss)``: ``guide`` itself in Pyro, where an estimator creates what it learns
        (REBAR's ``eta`` and temperatures, RELAX's control variate) in the param store when
        it first runs. NumPyro's ``tunable`` declares those as ``numpyro.param`` sites; the
        same code runs on both backends, with every estimator of this package."""
        return guide

    def _passes(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> Iterator[tuple[Callable, Callable]]:
        """``(model, guide)`` once inside the particle plate, or ``num_particles`` times."""
        if self.vectorize_particles and self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        if self.vectorize_particles and self.num_particles > 1:
            yield self._vectorized_num_particles(model), self._vectorized_num_particles(guide)
        else:
            for _ in range(self.num_particles):
                yield model, guide

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict):
        """Unused: the estimators run their own passes (``traces.py``)."""
        raise NotImplementedError(f"{type(self).__name__} runs its own passes.")

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _estimate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective and the surrogate, averaged over the particles.  :attr:`_first_step`
        says whether this is the first step of ``model`` and ``guide``, where an estimator
        checks what the structure of the programs decides (it stays true for a model or a
        guide that cannot be weakly referenced: checked at every step)."""
        with self._step(model, guide):
            pairs = [
                self._particle(m, g, args, kwargs)
                for m, g in self._passes(model, guide, args, kwargs)
            ]
        value = sum(p[0] for p in pairs) / self.num_particles
        return value, sum(p[1] for p in pairs) / self.num_particles

    @contextmanager
    def _step(self, model: Callable, guide: Callable) -> Iterator[None]:
        """The passes of one step of ``model`` and ``guide``: sets :attr:`_first_step`, and
        records the pair once they have run."""
        try:
            seen = guide in self._stepped.setdefault(model, weakref.WeakSet())
        except TypeError:
            seen = False
        self._first_step = not seen
        yield
        if not seen and model in self._stepped:
            self._stepped[model].add(guide)

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """The negative discrete objective, estimated."""
        with torch.no_grad():
            return -self._estimate(model, guide, args, kwargs)[0].item()

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs):
        """The negative objective in value, the negative gradient estimate in gradient."""
        value, surrogate = self._estimate(model, guide, args, kwargs)
        return -(value.detach() + surrogate - surrogate.detach())

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Fills ``.grad`` of every parameter with the negative gradient estimate; returns
        the negative objective."""
        value, surrogate = self._estimate(model, guide, args, kwargs)
        if surrogate.requires_grad:
            (-surrogate).backward()
        return -value.item()
