"""Session-wide checks for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Default output directories of ocr2-train (runs/, multirun/) and ocr2-eval (outputs/): a test passes its own
# (run_dir=, hydra.sweep.dir=, out_dir=, hydra.run.dir=) so that running the suite leaves the checkout as it was.
OUTPUT_DIRS = ("runs", "outputs", "multirun")


def _present() -> set[str]:
    return {name for name in OUTPUT_DIRS if (ROOT / name).exists()}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._ocr2_output_dirs_before = _present()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_ocr2_output_dirs_before", None)
    if before is None or hasattr(session.config, "workerinput"):  # pytest-xdist workers: the controller checks
        return
    new = sorted(_present() - before)
    if new:
        session.config.get_terminal_writer().line(
            f"\nERROR: the tests left {', '.join(f'{ROOT / n}/' for n in new)} in the checkout; pass the test's "
            f"own output directory (run_dir=, hydra.sweep.dir=, out_dir=, hydra.run.dir=)", red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
