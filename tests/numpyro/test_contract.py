"""The contract of the family, against ``numpyro_concrete`` (tests/contract_suite.py).

Skipped, as a whole, until ``numpyro_concrete`` exports every class of the family.
"""

import pytest

from tests.backends import CLASS_NAMES, NumpyroBackend
from tests.contract_suite import ContractSuite

numpyro_concrete = pytest.importorskip("numpyro_concrete")
_missing = [name for name in CLASS_NAMES if not hasattr(numpyro_concrete, name)]
if _missing:
    pytest.skip(
        f"numpyro_concrete does not export {', '.join(_missing)} yet", allow_module_level=True
    )


@pytest.fixture(scope="module")
def backend():
    return NumpyroBackend()


class TestNumpyroContract(ContractSuite):
    heavy_is_extended = True  # one JIT compilation per shape: see tests/conftest.py
