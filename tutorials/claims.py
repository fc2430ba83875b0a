"""The numbers a tutorial's text states, checked against the numbers its cells computed.

Every quantitative sentence in a tutorial's markdown is printed by a code cell above it; the
last cell of the notebook lists those sentences as claims and checks each one against the
computed value, so that a change which breaks a sentence fails the notebook (``make
tutorials`` runs every notebook at the full budget). Most claims hold only at the full budget;
under ``CONCRETE_TUTORIAL_BUDGET=small`` (the test suite) they are skipped, and listed by name.
Claims that hold at every budget (a closed-form number, a property of every run) say so with
``every_budget=True`` and are checked at both.
"""

import os
from typing import Any

SMALL = os.environ.get("CONCRETE_TUTORIAL_BUDGET", "full") == "small"


def _evaluate(value: Any) -> Any:
    return value() if callable(value) else value


class Claims:
    """Collects ``(status, claim, computed value)`` rows; :meth:`verify` prints them and raises
    ``AssertionError`` naming every claim that does not hold.

    A value (or the ``holds`` flag) may be given as a function of no arguments: it is called only
    when the claim is checked, so a full-budget claim may refer to a run that the small budget
    leaves out.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def _skipped(self, claim: str, every_budget: bool) -> bool:
        if SMALL and not every_budget:
            self.rows.append(("skipped (full budget only)", claim, "-"))
            return True
        return False

    def check(self, claim: str, holds: Any, value: Any, *, every_budget: bool = False) -> None:
        """The sentence ``claim`` holds (``holds``), given the computed ``value``."""
        if not self._skipped(claim, every_budget):
            status = "ok" if _evaluate(holds) else "FAILS"
            self.rows.append((status, claim, str(_evaluate(value))))

    def rounds_to(
        self, claim: str, value: Any, stated: float, decimals: int, *, every_budget: bool = False
    ) -> None:
        """The text states ``value`` as ``stated``, written with ``decimals`` decimals."""
        if not self._skipped(claim, every_budget):
            value = float(_evaluate(value))
            holds = abs(value - stated) <= 0.5 * 10.0**-decimals + 1e-12
            self.rows.append(("ok" if holds else "FAILS", claim, f"{value:.{decimals + 2}f}"))

    def between(
        self, claim: str, value: Any, low: float, high: float, *, every_budget: bool = False
    ) -> None:
        """The text states that ``value`` lies in ``[low, high]``."""
        if not self._skipped(claim, every_budget):
            value = float(_evaluate(value))
            self.rows.append(("ok" if low <= value <= high else "FAILS", claim, f"{value:.4g}"))

    def verify(self) -> None:
        """Print every claim with its status; raise if one does not hold."""
        width = max(len(status) for status, _, _ in self.rows)
        for status, claim, value in self.rows:
            print(f"{status:<{width}}  {claim}  [computed: {value}]")
        failed = [claim for status, claim, _ in self.rows if status == "FAILS"]
        skipped = sum(status.startswith("skipped") for status, _, _ in self.rows)
        held = len(self.rows) - skipped - len(failed)
        print(f"{held} claims hold, {len(failed)} fail, {skipped} skipped (full budget only)")
        if failed:
            raise AssertionError("the text states what was not computed: " + "; ".join(failed))
