"""The numbers a tutorial's text states, checked against the numbers its cells computed.

Every quantitative sentence in a tutorial's markdown is printed by a code cell above it; the
last cell of the notebook lists those sentences as claims and checks each one against the
computed value, so that a change which breaks a sentence fails the notebook (``make
tutorials`` runs every notebook at the full budget).

A claim must survive a change of seed.  A number that depends on random draws is stated with
its standard error and checked statistically (:meth:`Claims.consistent`: within ``z`` standard
errors of the difference between the stated and the computed value); a comparison is stated
only where the run separates it (:meth:`Claims.exceeds`: ``z`` standard errors clear of the
bound); a claim about time is a ratio of times measured in the same run, stated as a range
(:meth:`Claims.between`).  :meth:`Claims.rounds_to` is for numbers without noise.

An evaluation's standard error does not cover the spread between training runs: a number that
a training run produced is stated as a range or a bound that a rerun with another seed keeps.

Most claims hold only at the full budget; under ``CONCRETE_TUTORIAL_BUDGET=small`` (the test
suite) they are skipped, and listed by name. Claims that hold at every budget (a closed-form
number, a property of every run) say so with ``every_budget=True`` and are checked at both.
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

    def consistent(
        self,
        claim: str,
        value: Any,
        se: Any,
        stated: float,
        stated_se: float,
        *,
        z: float = 4.0,
        every_budget: bool = False,
    ) -> None:
        """The text states ``stated +- stated_se``; the run computed ``value +- se``.

        Holds when the two differ by at most ``z`` standard errors of their difference,
        ``z * sqrt(se**2 + stated_se**2)``: two independent runs of the same computation do.
        """
        self._estimate(
            claim,
            value,
            se,
            lambda v, e: abs(v - stated) <= z * (e**2 + stated_se**2) ** 0.5,
            every_budget,
        )

    def exceeds(
        self,
        claim: str,
        value: Any,
        se: Any,
        bound: float,
        *,
        z: float = 3.0,
        every_budget: bool = False,
    ) -> None:
        """The text states that the quantity estimated by ``value +- se`` exceeds ``bound``.

        Holds when ``value - z * se > bound``: the run separates the two.  For "below", pass
        the negated quantity and bound.
        """
        self._estimate(claim, value, se, lambda v, e: v - z * e > bound, every_budget)

    def _estimate(self, claim: str, value: Any, se: Any, holds, every_budget: bool) -> None:
        """A claim about the estimate ``value +- se``, which holds when ``holds(value, se)``."""
        if not self._skipped(claim, every_budget):
            value, se = float(_evaluate(value)), float(_evaluate(se))
            status = "ok" if holds(value, se) else "FAILS"
            self.rows.append((status, claim, f"{value:.4g} +- {se:.2g}"))

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
