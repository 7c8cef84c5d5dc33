"""A progress line for long evaluations: pages done of the total, the rate of the pages read in this run and the
time left at that rate (pages resumed from an earlier run count as done, not in the rate)."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int | None, enabled: bool = True, stream=None, label: str = "ocr2-eval"):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = stream or sys.stderr
        self.read = self.resumed = 0
        self.start = time.perf_counter()

    def line(self) -> str:
        done = self.read + self.resumed
        elapsed = time.perf_counter() - self.start
        rate = self.read / elapsed if elapsed > 0 and self.read else 0.0
        of = f"/{self.total}" if self.total else ""
        parts = [f"{self.label}: {done}{of} pages", f"{self.resumed} resumed" if self.resumed else "",
                 f"{rate:.2f} pages/s" if rate else ""]
        if rate and self.total:
            parts.append(f"ETA {_clock(max(self.total - done, 0) / rate)}")
        return ", ".join(p for p in parts if p)

    def update(self, read: int = 0, resumed: int = 0) -> None:
        self.read += read
        self.resumed += resumed
        if self.enabled and read:
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(self.line() + " - done", file=self.stream, flush=True)
