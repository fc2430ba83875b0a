"""The estimators on generated models (tests/generated_suite.py) against ``pyro_concrete``."""

import pytest

from tests.generated_backends import PyroGenerated
from tests.generated_suite import GeneratedSuite


@pytest.fixture(scope="module")
def backend():
    return PyroGenerated()


class TestPyroGenerated(GeneratedSuite):
    samples = 4000
    vimco_samples = 8000
