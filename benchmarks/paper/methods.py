"""The training methods, looked up by name; one entry serves both backends.

A method turns the discrete ``(model, guide)`` of a problem into what ``SVI`` trains:
``(model, guide, loss)``.  Concrete relaxes the pair and uses the backend's own ELBOs;
the score-function estimators take the discrete pair and a loss object of this library,
imported from the backend's package when a row asks for it.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .protocol import (
    ARCHITECTURES,
    ONE_LAYER_METHODS,
    POSTERIOR_TEMPERATURE,
    PRIOR_TEMPERATURE,
    STRUCTURED_TEMPERATURE,
)

__all__ = ["METHODS", "Method", "build", "check"]


@dataclass(frozen=True)
class Method:
    """``label``: the table's name; ``min_m`` and ``max_m`` (``None``: no bound): the
    numbers of samples m the method is defined for; ``loss_class``: ``(module, class)`` of a
    loss of this library, or ``None`` for Concrete, which uses the backend's ``Trace_ELBO``
    and this library's ``ImportanceWeightedELBO``."""

    label: str
    min_m: int
    max_m: int | None
    loss_class: tuple[str, str] | None
    multi_sample: bool = False  # the loss takes num_particles = m

    def valid_m(self, m: int) -> bool:
        """Whether the method is defined for ``m`` samples."""
        return self.min_m <= m and (self.max_m is None or m <= self.max_m)


METHODS = {
    "concrete": Method("Concrete", 1, None, None),
    "nvil": Method("NVIL", 1, 1, ("estimators.nvil", "NvilELBO")),
    "vimco": Method("VIMCO", 2, None, ("", "VimcoELBO"), multi_sample=True),
    # not a row of the paper's tables: K = m samples per point, its objective the ELBO
    "rloo": Method("RLOO", 2, None, ("", "RlooELBO"), multi_sample=True),
    "doublecv": Method("Double CV", 2, None, ("", "DoubleCvELBO"), multi_sample=True),
    "rodeo": Method("RODEO", 2, None, ("", "RodeoELBO"), multi_sample=True),
    "rebar": Method("REBAR", 1, 1, ("", "RebarELBO")),
    "relax": Method("RELAX", 1, 1, ("", "RelaxELBO")),
    "disarm": Method("DisARM", 1, 1, ("", "DisarmELBO")),
}


def check(name: str, m: int, arch: str | None = None) -> None:
    """Raise ``ValueError`` unless method ``name`` is defined for ``m`` samples and, when
    ``arch`` (a key of :data:`.protocol.ARCHITECTURES`) is given, trains that model."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    method = METHODS[name]
    if not method.valid_m(m):
        bounds = f"m = {method.min_m}" if method.max_m == method.min_m else f"m >= {method.min_m}"
        raise ValueError(f"method {name!r} is not defined for m = {m} (only for {bounds})")
    if arch is not None and name in ONE_LAYER_METHODS and len(ARCHITECTURES[arch].latents) > 1:
        raise ValueError(
            f"method {name!r} needs the guide's sites independent given the data, which "
            f"those of the {len(ARCHITECTURES[arch].latents)}-layer model {arch!r} are not"
        )


def _loss_class(package: str, method: Method) -> type:
    module_name, class_name = method.loss_class
    module_path = f"{package}.{module_name}" if module_name else package
    return getattr(importlib.import_module(module_path), class_name)


def build(backend, name: str, m: int, model: Callable, guide: Callable, table: str) -> tuple:
    """``(model, guide, loss)`` for method ``name`` with ``m`` samples, on ``backend``
    (:mod:`.backends`), for a problem of ``table`` ("density" or "structured")."""
    check(name, m)
    method = METHODS[name]
    if method.loss_class is None:
        if table == "structured":
            temperatures = (STRUCTURED_TEMPERATURE, STRUCTURED_TEMPERATURE)
        else:
            temperatures = (PRIOR_TEMPERATURE, POSTERIOR_TEMPERATURE)
        relax = backend.package.relax
        loss = backend.trace_elbo() if m == 1 else backend.importance_weighted_elbo(m)
        return relax(model, temperatures[0]), relax(guide, temperatures[1]), loss
    cls = _loss_class(backend.package.__name__, method)
    loss = backend.make_loss(cls, m if method.multi_sample else 1)
    return model, loss.tunable(guide), loss  # declares what the estimator learns
