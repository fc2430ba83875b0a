"""The tutorials' progress bars: drawn where someone watches at the full budget, silent at
the small budget (the test suite's) and off a terminal, and never in the way of the loop."""

import importlib.util
from pathlib import Path

import pytest

PROGRESS_PY = Path(__file__).resolve().parents[2] / "tutorials" / "progress.py"


@pytest.fixture
def progress_module():
    spec = importlib.util.spec_from_file_location("progress", PROGRESS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("budget", "watched", "drawn"),
    [("full", True, True), ("full", False, False), ("small", True, False)],
)
def test_a_bar_is_drawn_only_at_the_full_budget_where_someone_watches(
    progress_module, monkeypatch, capsys, budget, watched, drawn
):
    monkeypatch.setenv("CONCRETE_TUTORIAL_BUDGET", budget)
    monkeypatch.setattr(progress_module, "_watched", lambda: watched)
    assert list(progress_module.progress(range(5), "training")) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert ("training" in err and "5/5" in err) == drawn
    assert drawn or err == ""
