"""The relaxation workflow (tests/relax_suite.py) against ``numpyro_concrete``."""

import pytest

from tests.relax_backends import NumpyroRelaxBackend
from tests.relax_suite import RelaxSuite


@pytest.fixture(scope="module")
def b():
    return NumpyroRelaxBackend()


class TestNumpyroRelax(RelaxSuite):
    pass
