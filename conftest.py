"""Every Python code block of the README and of the documentation pages runs, as written.

Sybil collects the ```` ```python ```` blocks of ``README.md`` and ``docs/*.md`` as test items
(``testpaths`` in ``pyproject.toml`` names both, so ``make test`` runs them); other languages
(``bash``, ``bibtex``) are text.  The blocks of one page run in order in one namespace, as a
reader runs them, so each page is one ``xdist_group`` and ``make test`` distributes with
``--dist loadgroup``: a page's blocks stay on one worker.  A block that needs binarized MNIST
reads it as the page says, and is skipped, with the reason shown, when ``CONCRETE_MNIST``
does not name a file (the comment ``skip: next if(NO_MNIST, reason=...)`` before it, Sybil's
skip mechanism); a block that cannot run in a test process says why in the same way.

The rest of the test configuration is ``tests/conftest.py``.
"""

import os
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.integration.pytest import SybilItem
from sybil.parsers import markdown, myst


def _setup(namespace: dict) -> None:
    namespace["NO_MNIST"] = not Path(os.environ.get("CONCRETE_MNIST", "")).is_file()


_readme = Sybil(
    parsers=[markdown.PythonCodeBlockParser(), markdown.SkipParser()],
    patterns=["README.md"],
    setup=_setup,
    name="readme",
)
_pages = Sybil(
    parsers=[myst.PythonCodeBlockParser(), myst.SkipParser()],
    patterns=["docs/*.md"],
    setup=_setup,
    name="docs",
)
pytest_collect_file = (_readme + _pages).pytest()


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):  # `-p no:xdist`: one process runs all
        return
    for item in items:
        if isinstance(item, SybilItem):
            item.add_marker(pytest.mark.xdist_group(str(item.path)))
