"""Every Python code block of the README and of the documentation pages runs, as written.

Sybil collects the ```` ```python ```` blocks of ``README.md`` and ``docs/*.md`` as test items
(``testpaths`` in ``pyproject.toml`` names both, so ``make test`` runs them); blocks in other
languages (``bash``, ``bibtex``) are text.  Each block runs on its own, in a fresh namespace:
a reader can copy any one of them, and ``pytest -n`` may run the blocks of a page on different
workers.  A block that needs binarized MNIST reads it as the page says, and is skipped, with
the reason shown, when ``CONCRETE_MNIST`` does not name a file (the comment
``skip: next if(NO_MNIST, reason=...)`` on the line before it, Sybil's syntax); a block that
cannot run in a test process says why in the same way (``skip: next "reason"``).  The comment
is read with its block, not as an item of its own as Sybil's ``SkipParser`` reads it: that
parser keeps a state per page, which breaks when ``pytest -n`` sends the comment and its block
to different workers (the block then runs, and a block that starts Lightning's DDP ranks
brings its worker down).

The rest of the test configuration is ``tests/conftest.py``.
"""

import os
import re
from pathlib import Path
from unittest import SkipTest

from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers import markdown, myst

_PYTHON = PythonEvaluator()


def _setup(namespace: dict) -> None:
    """What the skip comments may read: whether the data set is missing."""
    namespace["NO_MNIST"] = not Path(os.environ.get("CONCRETE_MNIST", "")).is_file()


_SKIP = re.compile(
    r"(?:%|<!--)\s*skip: next\s+"
    r'(?:"(?P<always>[^"]*)"|if\((?P<condition>\w+), reason="(?P<reason>[^"]*)"\))'
)


def _skip_reason(example: Example) -> str | None:
    """The reason to skip the block, from a ``skip: next`` comment on the line before it."""
    before = example.document.text[: example.start].rstrip().rsplit("\n", 1)[-1]
    directive = _SKIP.match(before.strip())
    if directive is None:
        return None
    if directive["always"] is not None:
        return directive["always"]
    return directive["reason"] if example.namespace[directive["condition"]] else None


def _evaluate_on_its_own(example: Example) -> None:
    """Run the block in the page's namespace emptied of every earlier block's names."""
    example.namespace.clear()
    _setup(example.namespace)
    reason = _skip_reason(example)
    if reason is not None:
        raise SkipTest(reason)
    _PYTHON(example)


_readme = Sybil(
    parsers=[
        markdown.CodeBlockParser("python", evaluator=_evaluate_on_its_own),
    ],
    patterns=["README.md"],
    setup=_setup,
    name="readme",
)
_pages = Sybil(
    parsers=[myst.CodeBlockParser("python", evaluator=_evaluate_on_its_own)],
    patterns=["docs/*.md"],
    setup=_setup,
    name="docs",
)
pytest_collect_file = (_readme + _pages).pytest()
