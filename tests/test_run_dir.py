"""`run_dir=` holds the whole run: Hydra's own files (.hydra/, the job log) go with it, for one run and for a sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data_helpers import write_pages
from train_harness import BASE, ROOT, env


def _train(cwd: Path, overrides: list[str], flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    e = dict(env(), PYTHONPATH=os.pathsep.join([str(ROOT), env().get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, "-m", "train", *flags, *BASE, "checkpoint.every=1", *overrides], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_run_dir_holds_hydra_files_too(tmp_path):
    data, cwd = write_pages(tmp_path / "data", 8), tmp_path / "cwd"
    cwd.mkdir()
    _train(cwd, [f"data.path={data}", "max_steps=1", f"run_dir={tmp_path / 'x'}"])
    run = tmp_path / "x"
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert (run / "checkpoints" / "latest").is_file() and (run / "metrics.jsonl").is_file()
    assert f"run_dir: {run}" in (run / "config.yaml").read_text()  # the resolved config names the directory
    assert _listing(cwd) == []  # nothing under runs/ (nor outputs/, multirun/) of the working directory


def test_sweep_gives_each_job_its_own_dir_under_run_dir(tmp_path):
    data, cwd = write_pages(tmp_path / "data", 8), tmp_path / "cwd"
    cwd.mkdir()
    _train(cwd, [f"data.path={data}", "max_steps=1", f"run_dir={tmp_path / 'sweep'}", "seed=0,1"], flags=("-m",))
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        assert (sweep / job / "checkpoints" / "latest").is_file()
        assert f"run_dir: {sweep / job}" in (sweep / job / "config.yaml").read_text()
    assert (sweep / "multirun.yaml").is_file()
    assert _listing(cwd) == []
