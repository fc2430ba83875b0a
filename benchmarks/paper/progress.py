"""Where a row is, as plain lines on stderr that a log of an overnight run can keep.

One line after the first chunk of steps (its time, which includes the compilation), then
at most one a minute, and one when training stops::

    200H-784V concrete m=1 numpyro: step 20,000 of 100,000 (20%), 512.0 steps/s, curve
    118.47 nats at step 20,000, about 2 min 36 s of training left

The rate is over this call's steps after its first chunk, on the wall clock, so the time
left counts the curve evaluations that come with the steps (not the final evaluation).
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "duration"]


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min 05 s"``, ``"3 h 07 min"``."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


class Progress:
    """Progress lines of one row that trains from step ``start`` to ``total``.

    Call :meth:`steps` after each chunk, :meth:`point` after each curve point and
    :meth:`close` when training stops; ``every`` is the least number of seconds between
    two lines (the first and the last aside), ``clock`` the wall clock.
    """

    def __init__(
        self,
        name: str,
        start: int,
        total: int,
        every: float = 60.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.total, self.every, self.clock = name, total, every, clock
        self.stream = sys.stderr if stream is None else stream
        self.start, self.done, self.begun = start, start, clock()
        self.warm = None  # (clock, steps) at the end of this call's first chunk
        self.last_line, self.shown = None, None  # when the last line was printed, its steps
        self.curve = None  # (step, nll) of the last curve point

    def point(self, step: int, nll: float) -> None:
        """Record a curve point, shown on the next line."""
        self.curve = (step, nll)

    def steps(self, done: int) -> None:
        """``done`` steps are trained; a line if one is due."""
        now, first = self.clock(), self.warm is None
        self.done = done
        if first:
            self.warm = (now, done)
        if first or now - self.last_line >= self.every:
            self._line(now)

    def close(self) -> None:
        """Training stopped: a last line, unless the last one shows these steps (or none
        ran)."""
        if self.warm is not None and self.shown != self.done:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        self.last_line, self.shown = now, self.done
        warm_clock, warm_steps = self.warm
        share = 100 * self.done / self.total
        parts = [f"{self.name}: step {self.done:,} of {self.total:,} ({share:.0f}%)"]
        rate = None
        if self.done == warm_steps:  # only the first chunk so far: its time, no rate
            parts.append(f"first chunk {duration(warm_clock - self.begun)} (with compilation)")
        else:
            rate = (self.done - warm_steps) / max(now - warm_clock, 1e-9)
            parts.append(f"{rate:,.1f} steps/s")
        if self.curve is not None:
            parts.append(f"curve {self.curve[1]:.2f} nats at step {self.curve[0]:,}")
        if rate is not None and self.done < self.total:
            parts.append(f"about {duration((self.total - self.done) / rate)} of training left")
        print(", ".join(parts), file=self.stream, flush=True)
