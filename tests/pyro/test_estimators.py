"""The estimators' specification (tests/estimators_suite.py) against ``pyro_concrete``."""

import pytest

from tests.estimator_backends import PyroEstimators
from tests.estimators_suite import EstimatorsSuite


@pytest.fixture(scope="module")
def backend():
    return PyroEstimators()


class TestPyroEstimators(EstimatorsSuite):
    draws = 400
