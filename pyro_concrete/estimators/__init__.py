"""Unbiased and lower-variance gradient estimators for discrete latent sites, built on the
Concrete relaxation: loss objects for ``SVI(model, guide, optim, loss=...)`` where the model
and the guide are discrete."""

from .disarm import DisarmELBO
from .nvil import NvilELBO
from .rebar import RebarELBO
from .relax_cv import RelaxELBO
from .vimco import VimcoELBO

__all__ = ["DisarmELBO", "NvilELBO", "RebarELBO", "RelaxELBO", "VimcoELBO"]
