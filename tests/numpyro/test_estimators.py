"""The estimators' specification (tests/estimators_suite.py) against ``numpyro_concrete``."""

import pytest

from tests.estimator_backends import NumpyroEstimators
from tests.estimators_suite import EstimatorsSuite


@pytest.fixture(scope="module")
def backend():
    return NumpyroEstimators()


class TestNumpyroEstimators(EstimatorsSuite):
    draws = 4000
