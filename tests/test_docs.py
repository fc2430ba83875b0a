"""The documentation covers the public API and keeps the README a front page.

The API reference (``docs/api/<package>.rst``) names each public object in its own autodoc
directive, so a name added to a package's ``__all__`` and left out of the reference fails
here, as does a directive for a name that is not public.  The README's first code block is the
repository's two commands, and the README stays short: the rest lives in ``docs/``.  That
every code block of both runs is the business of ``conftest.py`` at the root.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["pyro_concrete", "numpyro_concrete"]
SUBMODULES = ["distributed", "problems"]
README_MAX_LINES = 250

DIRECTIVE = re.compile(r"^\.\. (auto\w+):: (\S+)\s*$", re.MULTILINE)


def _directives(package: str) -> list[tuple[str, str]]:
    return DIRECTIVE.findall((ROOT / "docs" / "api" / f"{package}.rst").read_text())


@pytest.mark.parametrize("package", PACKAGES)
def test_api_reference_documents_every_public_name_once(package):
    pytest.importorskip(package)
    public = importlib.import_module(package).__all__
    documented = [name for kind, name in _directives(package) if kind != "automodule"]
    assert sorted(documented) == sorted(public)


@pytest.mark.parametrize("package", PACKAGES)
def test_api_reference_documents_the_public_submodules(package):
    modules = {name for kind, name in _directives(package) if kind == "automodule"}
    assert modules == {f"{package}.{name}" for name in SUBMODULES}


def test_readme_first_code_block_is_the_two_make_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"^```\w*\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    assert first_block is not None, "the README has no code block"
    assert first_block.group(1).splitlines() == ["make demo", "make test"]


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
