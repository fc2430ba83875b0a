"""Concrete relaxations of discrete random variables for Pyro (Maddison, Mnih & Teh 2017)."""

from concrete_ppl import __version__ as __version__

from .autoguide import AutoRelaxed, AutoRelaxedDiscrete
from .constraints import LogSimplexTransform, log_simplex
from .datasets import load_binarized_mnist
from .distributions import (
    BinaryConcrete,
    BinaryConcreteStraightThrough,
    Concrete,
    ConcreteStraightThrough,
    ExpConcrete,
    HardConcrete,
    HardSample,
    LogitBinaryConcrete,
    RelaxedSample,
)
from .estimators import (
    DisarmELBO,
    DoubleCvELBO,
    ImportanceWeightedELBO,
    NvilELBO,
    RebarELBO,
    RelaxELBO,
    RlooELBO,
    RodeoELBO,
    VimcoELBO,
)
from .infer import (
    JitTrace_ELBO,
    constant_temperature,
    discrete_bound,
    discretize,
    exponential_decay,
    zero_temperature_limit,
)
from .relax import RELAX_STEP, Relaxed, relax, select

__all__ = [
    "RELAX_STEP",
    "AutoRelaxed",
    "AutoRelaxedDiscrete",
    "BinaryConcrete",
    "BinaryConcreteStraightThrough",
    "Concrete",
    "ConcreteStraightThrough",
    "DisarmELBO",
    "DoubleCvELBO",
    "ExpConcrete",
    "HardConcrete",
    "HardSample",
    "ImportanceWeightedELBO",
    "JitTrace_ELBO",
    "LogSimplexTransform",
    "LogitBinaryConcrete",
    "NvilELBO",
    "RebarELBO",
    "RelaxELBO",
    "Relaxed",
    "RelaxedSample",
    "RlooELBO",
    "RodeoELBO",
    "VimcoELBO",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
    "load_binarized_mnist",
    "log_simplex",
    "relax",
    "select",
    "zero_temperature_limit",
]
