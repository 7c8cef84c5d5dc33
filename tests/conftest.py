"""Session-wide checks for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# Default output directories of ocr2-train (runs/, multirun/) and ocr2-eval (outputs/): a test passes its own
# (run_dir=, hydra.sweep.dir=, out_dir=, hydra.run.dir=) so that running the suite leaves the checkout as it was.
OUTPUT_DIRS = ("runs", "outputs", "multirun")


def _present() -> set[str]:
    return {name for name in OUTPUT_DIRS if (ROOT / name).exists()}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker (and every process its tests start) gets its share of the cores. torch
    otherwise starts one intra-op thread per core in every worker, and with more runnable threads than cores each
    parallel op waits at its barrier for a descheduled thread: five in-process files took 110 s on two workers
    that way and 36 s with one thread each (2 cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


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


def _slow_count(items: list[pytest.Item]) -> dict[Path, int]:
    counts: dict[Path, int] = {}
    for item in items:
        counts[item.path] = counts.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    return counts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with the most slow (multi-process, minute-long) tests first, the rest in their usual order: under
    `make test`'s two workers each taking whole files (`--dist loadfile --no-loadscope-reorder`), a long file
    picked up last keeps one worker busy while the other has finished. The order is the same on every worker
    (xdist checks that the collections agree)."""
    slow = _slow_count(items)
    first_seen = {path: i for i, path in reversed(list(enumerate(item.path for item in items)))}
    items.sort(key=lambda item: (-slow[item.path], first_seen[item.path]))
