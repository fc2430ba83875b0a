"""The Concrete family as NumPyro distributions."""

from .binary_concrete import BinaryConcrete, LogitBinaryConcrete
from .concrete import Concrete, ExpConcrete
from .hard_concrete import HardConcrete
from .one_hot_categorical import OneHotCategorical
from .straight_through import BinaryConcreteStraightThrough, ConcreteStraightThrough

__all__ = [
    "BinaryConcrete",
    "BinaryConcreteStraightThrough",
    "Concrete",
    "ConcreteStraightThrough",
    "ExpConcrete",
    "HardConcrete",
    "LogitBinaryConcrete",
    "OneHotCategorical",
]
