"""Progress bars for the tutorials' long loops (``tqdm``, as NumPyro's ``SVI.run`` shows).

A bar shows where someone watches: in a Jupyter kernel, or on a terminal. It stays silent at
``CONCRETE_TUTORIAL_BUDGET=small`` (the test suite runs the notebooks there) and when the
output goes to a file or a pipe, so that logs do not fill with redrawn bars.
"""

import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _watched() -> bool:
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str) -> Iterator[T]:
    """``iterable``, with a progress bar labelled ``desc`` where someone watches."""
    quiet = os.environ.get("CONCRETE_TUTORIAL_BUDGET", "full") == "small" or not _watched()
    with warnings.catch_warnings():  # without ipywidgets, tqdm.auto falls back to text bars
        warnings.filterwarnings("ignore", message="IProgress not found")
        return iter(tqdm(iterable, desc=desc, disable=quiet))
