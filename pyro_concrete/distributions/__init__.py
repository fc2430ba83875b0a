"""The Concrete family as Pyro distributions."""

from .binary_concrete import BinaryConcrete, LogitBinaryConcrete
from .concrete import Concrete, ExpConcrete
from .hard_concrete import HardConcrete
from .relaxed import RelaxedSample
from .straight_through import BinaryConcreteStraightThrough, ConcreteStraightThrough, HardSample

__all__ = [
    "BinaryConcrete",
    "BinaryConcreteStraightThrough",
    "Concrete",
    "ConcreteStraightThrough",
    "ExpConcrete",
    "HardConcrete",
    "HardSample",
    "LogitBinaryConcrete",
    "RelaxedSample",
]
