"""The estimators on generated models (tests/generated_suite.py) against ``numpyro_concrete``."""

import pytest

from tests.generated_backends import NumpyroGenerated
from tests.generated_suite import GeneratedSuite


@pytest.fixture(scope="module")
def backend():
    return NumpyroGenerated()


class TestNumpyroGenerated(GeneratedSuite):
    samples = 4000
    vimco_samples = 20000
