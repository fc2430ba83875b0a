"""Concrete relaxations of discrete random variables for NumPyro (Maddison, Mnih & Teh 2017)."""

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
    LogitBinaryConcrete,
    OneHotCategorical,
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
    "ImportanceWeightedELBO",
    "LogSimplexTransform",
    "LogitBinaryConcrete",
    "NvilELBO",
    "OneHotCategorical",
    "RebarELBO",
    "RelaxELBO",
    "Relaxed",
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
