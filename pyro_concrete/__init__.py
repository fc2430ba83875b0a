"""Concrete relaxations of discrete random variables for Pyro (Maddison, Mnih & Teh 2017)."""

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
from .infer import constant_temperature, discrete_bound, discretize, exponential_decay
from .relax import relax, select

__all__ = [
    "AutoRelaxed",
    "AutoRelaxedDiscrete",
    "BinaryConcrete",
    "BinaryConcreteStraightThrough",
    "Concrete",
    "ConcreteStraightThrough",
    "ExpConcrete",
    "HardConcrete",
    "HardSample",
    "LogSimplexTransform",
    "LogitBinaryConcrete",
    "RelaxedSample",
    "constant_temperature",
    "discrete_bound",
    "discretize",
    "exponential_decay",
    "load_binarized_mnist",
    "log_simplex",
    "relax",
    "select",
]
