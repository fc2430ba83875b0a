"""The distribution ``concrete-ppl`` as users install it: each package imports with its own
framework only, and the wheel installs each extra alone into a fresh environment.

The wheel test builds the wheel from this checkout and installs it with pip (its cache
reused) from the configured index: the CI check that ``concrete-ppl[numpyro]`` brings no
torch and ``concrete-ppl[pyro]`` no jax.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import concrete_ppl

ROOT = Path(__file__).resolve().parents[1]
# package -> (its extra, the other framework's top-level modules)
PACKAGES = {
    "pyro_concrete": ("pyro", ("jax", "jaxlib", "numpyro")),
    "numpyro_concrete": ("numpyro", ("torch", "pyro")),
}
# The CPU wheel, installed first as the Makefile does: the extra's bare `torch` requirement
# would otherwise pull the multi-GB CUDA build.
TORCH = "torch==2.13.0"


def _run(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_module_imports_with_the_other_framework_blocked(package):
    """Each module of ``package`` imports in a process where importing the other
    framework raises, so ``pip install concrete-ppl[<extra>]`` alone is enough."""
    _, blocked = PACKAGES[package]
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {blocked!r}:
                    raise ImportError(f"{{name}} is blocked")

        sys.meta_path.insert(0, Blocked())
        package = importlib.import_module({package!r})
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
        print(package.__version__)
        """
    )
    _run(sys.executable, "-c", script)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, ".")
    (built,) = out.glob("concrete_ppl-*.whl")
    return built


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_wheel_with_one_extra_installs_its_framework_only(package, wheel, tmp_path):
    extra, other = PACKAGES[package]
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile")
    if extra == "pyro":
        _run(*pip, TORCH)
    _run(*pip, f"{wheel}[{extra}]")
    check = textwrap.dedent(
        f"""
        import importlib.metadata, importlib.util
        import {package}
        print({package}.__version__, importlib.metadata.version("concrete-ppl"))
        print(*[m for m in {other!r} if importlib.util.find_spec(m) is not None])
        """
    )
    versions, installed = _run(python, "-c", check, cwd=tmp_path).splitlines()
    # the distribution's version is the one written in concrete_ppl, as both packages say
    assert versions.split() == [concrete_ppl.__version__] * 2
    assert installed == "", f"{package} with the {extra} extra installed {installed}"
