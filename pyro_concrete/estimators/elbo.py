"""The base of the estimators: an ``ELBO`` whose loss is the discrete objective and whose
gradient is a surrogate's, averaged over particles drawn in a loop or in one vectorised
pass (a leftmost particle plate, as ``Trace_ELBO(vectorize_particles=True)``)."""

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyro
import torch
from pyro.infer import ELBO
from pyro.infer.elbo import ELBOModule
from pyro.nn import PyroModule, PyroParam
from torch.distributions import constraints
from torch.distributions.constraints import Constraint

__all__ = ["DiscreteELBO", "TunedQuantities"]


class TunedQuantities(PyroModule):
    """What an estimator learns of its own, as ``PyroParam`` attributes created when first
    read (and any module it sets as an attribute): a ``torch.nn.Module``, so that an
    optimiser of ``elbo(model, guide).parameters()`` and DDP see them, whose attributes
    are ``pyro.param`` sites of the same names, so that ``SVI``'s optimiser sees them too
    (and they live in the param store unless
    ``pyro.settings.set(module_local_params=True)``).  As a ``PyroModule``'s, they belong
    to the estimator: a new estimator starts from its initial values, while
    ``pyro.clear_param_store()`` leaves those of an existing one as they are.  (Pyro
    only: NumPyro's ``tunable`` guide declares them as ``numpyro.param`` sites.)"""

    def forward(
        self, name: str, init: torch.Tensor, constraint: Constraint = constraints.real
    ) -> torch.Tensor:
        """The quantity ``name``, created at ``init`` (or the param store's value)."""
        *path, leaf = name.split(".")
        module = self
        for part in path:  # a site name with dots: nested modules give the same full name
            if not isinstance(getattr(module, part, None), PyroModule):
                setattr(module, part, PyroModule())
            module = getattr(module, part)
        if leaf not in dict(module.named_pyro_params(recurse=False)):
            setattr(module, leaf, PyroParam(init, constraint))
        return getattr(module, leaf)


class DiscreteELBO(ELBO):
    """An estimator of the gradient of a discrete objective.

    Subclasses implement :meth:`_particle`, which returns the objective's estimate and a
    surrogate whose gradient is the gradient estimate, both summed over the elements (and
    the vectorised particles) of one pass; this class averages them over the particles
    and gives ``loss``, ``differentiable_loss``, ``loss_and_grads`` and ``tunable``.
    What an estimator learns of its own lives in :attr:`tuned`, which
    ``elbo(model, guide)`` holds.
    """

    #: whether one call of :meth:`_particle` takes all ``num_particles`` samples, stacked
    #: on a sample dim (a ``K``-sample objective, leave-one-out baselines, NVIL's moments
    #: over a step's samples): it is then called once, and nothing is averaged here
    stacks_particles = False

    def __init__(
        self,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        max_plate_nesting: float = float("inf"),
    ) -> None:
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(
                f"{type(self).__name__}: num_particles must be a positive int, "
                f"got {num_particles!r}."
            )
        super().__init__(
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=max_plate_nesting,
        )
        #: the estimator's own quantities (empty unless it learns some)
        self.tuned = TunedQuantities()
        #: the guides stepped with each model (model -> guides), for the checks of a first step
        self._stepped = weakref.WeakKeyDictionary()
        #: whether the step being taken is the first of its model and guide
        self._first_step = True

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """Pyro's ``ELBOModule`` of ``model`` and ``guide``, holding :attr:`tuned` too."""
        module = super().__call__(model, guide)
        module.tuned = self.tuned
        return module

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

    def _pair(self, name: str) -> tuple[pyro.plate, int]:
        """A plate ``name`` of size 2 left of every other plate (the particles' included),
        and its dim: two passes in one, which needs model and guide to broadcast (DisARM's
        ``b`` and ``b~``, REBAR's relaxed passes at ``z`` and ``z~``)."""
        dim = -self.max_plate_nesting - 1
        return pyro.plate(name, 2, dim=dim), dim

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict):
        """Unused: the estimators run their own passes (``traces.py``)."""
        raise NotImplementedError(f"{type(self).__name__} runs its own passes.")

    # NumPyro's hook takes the key and the parameters first, as its ELBO.loss hands them
    # (Pyro draws from its global seed and reads the param store).
    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(value, surrogate)`` of one particle: the objective's estimate, and a tensor
        whose gradient is the gradient estimate, from passes of ``model`` and ``guide``
        (inside the particle plate when vectorised; the unchanged pair when
        :attr:`stacks_particles`)."""
        raise NotImplementedError

    def _estimate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective and the surrogate, averaged over the particles.  :attr:`_first_step`
        says whether this is the first step of ``model`` and ``guide``, where an estimator
        checks what the structure of the programs decides (it stays true for a model or a
        guide that cannot be weakly referenced: checked at every step)."""
        with self._step(model, guide):
            if self.stacks_particles:
                pairs, count = [self._particle(model, guide, args, kwargs)], 1
            else:
                passes = self._passes(model, guide, args, kwargs)
                pairs = [self._particle(m, g, args, kwargs) for m, g in passes]
                count = self.num_particles
        return sum(p[0] for p in pairs) / count, sum(p[1] for p in pairs) / count

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
