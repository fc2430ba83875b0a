"""Concrete relaxations of discrete random variables for Pyro (Maddison, Mnih & Teh 2017)."""

from .constraints import LogSimplexTransform, log_simplex
from .distributions import (
    BinaryConcrete,
    BinaryConcreteStraightThrough,
    Concrete,
    ConcreteStraightThrough,
    ExpConcrete,
    HardConcrete,
    HardSample,
    LogitBinaryConcrete,
)

__all__ = [
    "BinaryConcrete",
    "BinaryConcreteStraightThrough",
    "Concrete",
    "ConcreteStraightThrough",
    "ExpConcrete",
    "HardConcrete",
    "HardSample",
    "LogSimplexTransform",
    "LogitBinaryConcrete",
    "log_simplex",
]
