"""Unbiased and lower-variance gradient estimators for discrete latent sites, built on the
Concrete relaxation: loss objects for ``SVI(model, guide, optim, loss=...)`` where the model
and the guide are discrete; and the importance-weighted bound of the relaxed model, whose
gradient is pathwise."""

from .disarm import DisarmELBO
from .double_cv import DoubleCvELBO
from .importance_weighted import ImportanceWeightedELBO
from .nvil import NvilELBO
from .rebar import RebarELBO
from .relax_cv import RelaxELBO
from .rloo import RlooELBO
from .rodeo import RodeoELBO
from .vimco import VimcoELBO

__all__ = [
    "DisarmELBO",
    "DoubleCvELBO",
    "ImportanceWeightedELBO",
    "NvilELBO",
    "RebarELBO",
    "RelaxELBO",
    "RlooELBO",
    "RodeoELBO",
    "VimcoELBO",
]
