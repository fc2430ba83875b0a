"""The relaxation workflow (tests/relax_suite.py) against ``pyro_concrete``."""

import pyro
import pytest

from tests.relax_backends import PyroRelaxBackend
from tests.relax_suite import RelaxSuite


@pytest.fixture(scope="module")
def b():
    return PyroRelaxBackend()


@pytest.fixture(autouse=True)
def _fresh_param_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


class TestPyroRelax(RelaxSuite):
    pass
