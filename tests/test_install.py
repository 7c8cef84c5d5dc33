"""A plain (non-editable) install works: build the wheel offline, install it into a bare directory, and from a
working directory outside the checkout run ocr2-train --help, ocr2-eval --help, ocr2-data synth and a tiny training run.
Every module must come from the installed copy (configs included: Hydra's yaml groups ship as package data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from train_harness import BASE, ROOT, env

SOURCES = ["pyproject.toml", "README.md", "ocr2", "configs", "train", "eval", "data_pipelines"]
MODULES = ["configs", "ocr2", "ocr2.modeling.model", "train.app", "train.trainer", "eval.evaluate", "data_pipelines"]


def _run(cmd: list[str], cwd: Path, e: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_checkout(tmp_path):
    # Build from a copy, so that the build leaves no build/ or *.egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    e = env()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(src), "-w", str(tmp_path / "wheel")],
         tmp_path, e)
    (wheel,) = (tmp_path / "wheel").glob("ocr2-*.whl")
    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], tmp_path, e)

    # Outside the checkout, with only the installed copy on the path (the venv's editable finder, if any, comes
    # after it on sys.meta_path; the __file__ check below proves which copy was imported).
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    e = dict(e, PYTHONPATH=str(site))
    probe = ("import importlib, json, sys; import configs; "
             f"print(json.dumps({{m: importlib.import_module(m).__file__ for m in {MODULES!r}}} | "
             "{'CONFIG_DIR': configs.CONFIG_DIR}))")
    files = json.loads(_run([sys.executable, "-c", probe], cwd, e).stdout.strip().splitlines()[-1])
    for name, path in files.items():
        assert Path(path).resolve().is_relative_to(site.resolve()), f"{name} imported from {path}, not {site}"
    assert (Path(files["CONFIG_DIR"]) / "model" / "tiny.yaml").is_file()
    assert (Path(files["CONFIG_DIR"]) / "synth" / "demo.json").is_file()

    scripts = site / "bin"
    assert "model: checkpoint, micro, official, small, tiny" in _run([str(scripts / "ocr2-train"), "--help"], cwd, e).stdout
    assert "checkpoint: ???" in _run([str(scripts / "ocr2-eval"), "--help"], cwd, e).stdout

    data, run = tmp_path / "data", tmp_path / "run"
    _run([sys.executable, "-m", "data_pipelines", "synth", str(data), "--train", "8", "--validation", "2",
          "--long-side", "256", "--config", str(Path(files["CONFIG_DIR"]) / "synth" / "demo.json")], cwd, e)
    _run([str(scripts / "ocr2-train"), "experiment=tiny_synth", *BASE, "max_steps=2", "checkpoint.every=2",
          f"data.path={data}", f"run_dir={run}"], cwd, e)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert (run / "checkpoints" / "step_000002" / "model" / "config.json").is_file()
    assert (run / ".hydra" / "config.yaml").is_file()
    assert sorted(os.listdir(cwd)) == []  # nothing written to the working directory (no runs/, outputs/)
