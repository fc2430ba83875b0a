"""The layers of both packages point one way, as in Pyro (``infer`` imports
``distributions``, never the reverse): a module imports only from its own unit (a module,
or a subpackage) and from units of lower layers.  Read from the source with ``ast``."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: each package's units by layer, lowest first
LAYERS = [
    {"constraints", "datasets"},
    {"distributions"},
    {"relax"},
    {"plates"},
    {"infer"},
    {"autoguide", "estimators", "problems"},
    {"distributed"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _imported_units(path: Path, package: str) -> set[str]:
    """The units of ``package`` that the module at ``path`` imports (relative imports
    resolved against its own location, absolute ones by name)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                target = (*base, *(node.module or "").split(".")) if node.module else base
                names = (
                    [(*target, alias.name) for alias in node.names] if not node.module else [target]
                )
            else:
                names = [tuple((node.module or "").split("."))]
        elif isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        else:
            continue
        units |= {name[1] for name in names if len(name) > 1 and name[0] == package}
    return units


@pytest.mark.parametrize("package", ["pyro_concrete", "numpyro_concrete"])
def test_every_module_imports_only_its_own_unit_and_lower_layers(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    checked = 0
    for path in modules:
        parts = path.relative_to(ROOT / package).with_suffix("").parts
        unit = parts[0]
        if unit == "__init__":
            continue  # the package's face imports everything
        assert unit in LAYER, f"{package}.{unit} has no layer in tests/test_layers.py"
        for other in _imported_units(path, package) - {unit}:
            assert LAYER[other] < LAYER[unit], (
                f"{path.relative_to(ROOT)} imports {package}.{other}, a unit of layer "
                f"{LAYER[other]} from layer {LAYER[unit]}"
            )
        checked += 1
    assert checked > 20
