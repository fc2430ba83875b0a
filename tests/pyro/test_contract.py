"""The contract of the family, against ``pyro_concrete`` (tests/contract_suite.py)."""

import pytest

from tests.backends import PyroBackend
from tests.contract_suite import ContractSuite


@pytest.fixture(scope="module")
def backend():
    return PyroBackend()


class TestPyroContract(ContractSuite):
    pass
