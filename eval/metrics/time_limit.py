"""A wall-clock limit for one scoring step, so a pathological page cannot stall a whole benchmark run.

Why: pylatexenc 3.0a (the version the official OmniDocBench evaluator pins) loops forever on some inputs (a
snippet ending in a backslash), and the official block matcher can take minutes on long pages - the official
evaluator itself gives its matcher 30 s (`func_timeout`) and falls back to a simple one-to-one match.

The limit uses SIGALRM, so it only applies in the main thread of a Unix process; elsewhere (a worker thread,
Windows) the step runs unlimited rather than failing. Nested limits keep the outer alarm.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StepTimeout(BaseException):
    """Raised inside the limited block when its time is up. A BaseException, like KeyboardInterrupt, so that the
    `except Exception` fallbacks around parser calls cannot swallow an outer limit."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise StepTimeout in the block after `seconds` (where SIGALRM is usable and no outer limit is running)."""
    if not _can_alarm() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def _expire(signum, frame):
        raise StepTimeout(f"step exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
