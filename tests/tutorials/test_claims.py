"""The claim checker that closes every tutorial: a claim that does not hold fails the
notebook, and the small budget skips, by name, the claims that hold only at the full one."""

import importlib.util
import re
from pathlib import Path

import pytest

CLAIMS_PY = Path(__file__).resolve().parents[2] / "tutorials" / "claims.py"


def load_claims(monkeypatch, budget):
    monkeypatch.setenv("CONCRETE_TUTORIAL_BUDGET", budget)
    spec = importlib.util.spec_from_file_location("claims", CLAIMS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Claims


def test_a_false_claim_fails_by_name(monkeypatch, capsys):
    claims = load_claims(monkeypatch, "full")()
    claims.rounds_to("rounds to 0.310", 0.31018, 0.310, 3)
    claims.rounds_to("rounds to 0.292", 0.31018, 0.292, 3)
    claims.between("between 1 and 2", 2.5, 1, 2)
    with pytest.raises(AssertionError, match=re.escape("rounds to 0.292; between 1 and 2")):
        claims.verify()
    assert re.search(r"^ok +rounds to 0.310", capsys.readouterr().out, re.MULTILINE)


def test_small_budget_skips_full_budget_claims_by_name(monkeypatch, capsys):
    claims = load_claims(monkeypatch, "small")()
    claims.check("needs the full run", lambda: {}["missing"], lambda: {}["missing"])
    claims.check("closed form", True, 1, every_budget=True)
    claims.verify()
    out = capsys.readouterr().out
    assert "skipped (full budget only)  needs the full run" in out
    assert "1 claims hold, 0 fail, 1 skipped" in out


def test_small_budget_still_checks_every_budget_claims(monkeypatch):
    claims = load_claims(monkeypatch, "small")()
    claims.check("closed form", False, 1, every_budget=True)
    with pytest.raises(AssertionError, match="closed form"):
        claims.verify()


def test_a_stated_estimate_is_checked_within_its_standard_errors(monkeypatch, capsys):
    claims = load_claims(monkeypatch, "full")()
    # |4.9 - 5.7| = 0.8 <= 4 * hypot(0.8, 0.7) = 4.25: a rerun's value; 1.0 is 3.2 > 2.9 away.
    claims.consistent("RELAX - Concrete 5.7 +- 0.7", 4.9, 0.8, 5.7, 0.7)
    claims.consistent("a moved number", 1.0, 0.5, 5.7, 0.5)
    with pytest.raises(
        AssertionError, match=re.escape("the text states what was not computed: a moved number")
    ):
        claims.verify()
    assert re.search(r"^ok +RELAX - Concrete", capsys.readouterr().out, re.MULTILINE)


def test_a_comparison_holds_only_where_the_run_separates_it(monkeypatch):
    claims = load_claims(monkeypatch, "full")()
    claims.exceeds("clear of 10", 13.0, 0.9, 10.0)  # 13 - 3 * 0.9 = 10.3 > 10
    claims.exceeds("not separated", 13.0, 1.1, 10.0)  # 13 - 3 * 1.1 = 9.7
    with pytest.raises(AssertionError, match=r"what was not computed: not separated$"):
        claims.verify()
