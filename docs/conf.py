"""Sphinx configuration: the API reference from the packages' docstrings, MyST pages, and the
tutorials executed at the small budget (``CONCRETE_TUTORIAL_BUDGET=small``) as the site builds.

``make docs`` runs ``sphinx-build -W --keep-going``: every warning fails the build.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

# The checkout's packages, for autodoc here and for the notebooks' kernels.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

# The notebooks' kernels inherit this environment: the small budget unless one is set, and one
# JAX compilation cache for the build, so that the six kernels compile the programs they share
# once (as tests/conftest.py does for the test suite's processes), removed when the build ends.
os.environ.setdefault("CONCRETE_TUTORIAL_BUDGET", "small")
# Without ipywidgets, tqdm's notebook bar warns that it falls back to text; a built page has no
# use for either (the kernels run the notebooks unattended).
os.environ["PYTHONWARNINGS"] = ",".join(
    filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"])
)
_CACHE_OWNER = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _CACHE_OWNER:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="concrete-docs-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

project = "concrete-ppl"
author = "concrete-ppl developers"
copyright = "concrete-ppl developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# `docs/tutorials` is a link to the repository's `tutorials/`: the notebooks run where they
# live, beside `claims.py`, which they import.  Its README is the repository's index of them.
exclude_patterns = ["_build", "tutorials/README.md", "tutorials/_executed", "**/.ipynb_checkpoints"]

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

nb_execution_mode = "force"


def _data_is_here() -> bool:
    """Whether the binarized MNIST file is on this machine (named by ``CONCRETE_MNIST`` or
    in the loader's cache): a build never downloads it."""
    import pooch

    named = os.environ.get("CONCRETE_MNIST")
    cached = Path(pooch.os_cache("concrete-ppl")) / "binarized_mnist.npz"
    return Path(named).is_file() if named else cached.is_file()


# Without the data set, the notebooks that read it are rendered as stored, without outputs.
nb_execution_excludepatterns = (
    [] if _data_is_here() else ["tutorials/04_discrete_vae.ipynb", "tutorials/06_*.ipynb"]
)
if nb_execution_excludepatterns:
    print(f"docs: no binarized MNIST here; not executed: {nb_execution_excludepatterns}")
nb_execution_timeout = 1800  # per cell; seconds at the small budget
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # the reference shows what this library states
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = "concrete-ppl"


def _remove_jax_cache(app, exception) -> None:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def setup(app) -> None:
    if _CACHE_OWNER:
        app.connect("build-finished", _remove_jax_cache)
