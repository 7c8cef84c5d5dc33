"""Build a dataset beside its target and swap it in only when the build succeeded.

A builder writes into `.<name>.building-<pid>/` next to `out_dir`; the existing dataset is untouched until then.
On success the staged copy replaces it with two renames (the old one is moved aside, the new one moved in, the old
one deleted), so a typo in an input path, an empty result, an exception or a kill during the build leaves the
existing dataset as it was. Splits the build does not write are carried over from the existing dataset (hard
links, no copy), as a rebuild of one split always kept the others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator


def _carry_over(old: Path, new: Path, rebuilt: set[str]) -> None:
    data = old / "data"
    if not data.is_dir():
        return
    (new / "data").mkdir(parents=True, exist_ok=True)
    for shard in data.glob("*.parquet"):
        if shard.name.rsplit("-", 3)[0] in rebuilt:  # <split>-<i>-of-<n>.parquet; a split name may hold "-"
            continue  # a rebuild must not mix with an older build's shards of the same split
        try:
            os.link(shard, new / "data" / shard.name)
        except OSError:  # another file system, or links not allowed: copy
            shutil.copy2(shard, new / "data" / shard.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(out_dir: Path) -> None:
    """Staging / set-aside directories of builds that were killed (their process is gone)."""
    for leftover in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, pid = leftover.name.rpartition("-")
        if kind.endswith((".building", ".old")) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staged_dataset(out_dir: str | Path, splits: Iterable[str]) -> Iterator[Path]:
    """Yields the staging directory to write into. The caller raises to abandon the build (the staging
    directory is removed, `out_dir` is kept as it was); a normal exit swaps the staged dataset in."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    staging = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _carry_over(out_dir, staging, set(splits))
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, aside)
    os.replace(staging, out_dir)
    shutil.rmtree(aside, ignore_errors=True)


def require_pages(counts: dict[str, int], what: str, skipped: dict | None = None) -> None:
    """An empty build is an error, not a success: it names the input and why its pages were skipped."""
    if not sum(counts.values()):
        why = f"; skipped: {skipped}" if skipped else ""
        raise ValueError(f"{what}: no pages were written{why}; the existing dataset (if any) is kept")
