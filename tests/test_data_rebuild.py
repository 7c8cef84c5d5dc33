"""ocr2-data never loses a dataset: a rebuild is staged beside the target and swapped in only when it succeeded;
a typo in an input path, an empty result or a kill during the build leave the existing dataset as it was."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipelines.build_synth import build_synth
from data_pipelines.cli import main
from data_pipelines.folder import build_folder
from data_pipelines.synth.config import SynthConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL = SynthConfig(long_side=(256, 256), languages={"en": 1.0}, fill=(0.2, 0.2))


def _digest(dataset: Path) -> dict[str, str]:
    return {str(p.relative_to(dataset)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dataset.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path) -> Path:
    out = tmp_path / "ds"
    build_synth(out, {"train": 3, "validation": 2}, SMALL)
    return out


def test_a_typo_in_the_input_folder_keeps_the_dataset(dataset, tmp_path, capsys):
    before = _digest(dataset)
    assert main(["folder", str(dataset), "--root", str(tmp_path / "scnas")]) == 2
    assert "scnas: no such folder" in capsys.readouterr().err
    assert _digest(dataset) == before


def test_an_empty_result_is_an_error_and_keeps_the_dataset(dataset, tmp_path, capsys):
    before = _digest(dataset)
    (tmp_path / "empty").mkdir()
    assert main(["folder", str(dataset), "--root", str(tmp_path / "empty")]) == 2
    assert "no pages were written" in capsys.readouterr().err
    assert _digest(dataset) == before
    assert not list(tmp_path.glob(".ds.*"))  # no staging left behind


def test_a_successful_rebuild_replaces_its_split_and_keeps_the_others(dataset):
    build_synth(dataset, {"train": 4, "validation": 0}, SMALL, seed=1)
    shards = sorted(p.name for p in (dataset / "data").glob("*.parquet"))
    assert [s.split("-")[0] for s in shards] == ["train", "validation"]


def test_an_exception_during_the_build_keeps_the_dataset(dataset, monkeypatch):
    before = _digest(dataset)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("data_pipelines.folder.folder_samples", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_folder(dataset, dataset)
    assert _digest(dataset) == before


@pytest.mark.slow
def test_sigkill_during_a_rebuild_keeps_the_dataset(dataset, tmp_path):
    before = _digest(dataset)
    proc = subprocess.Popen([sys.executable, "-m", "data_pipelines", "synth", str(dataset), "--train", "3000",
                             "--validation", "0", "--long-side", "256"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".ds.building-*/data/*.tmp")):
        time.sleep(0.05)  # wait until the rebuild is writing shards
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert _digest(dataset) == before
    build_synth(dataset, {"train": 2, "validation": 0}, SMALL)  # the next build clears the killed one's staging
    assert not list(tmp_path.glob(".ds.building-*"))


def test_a_page_size_no_reader_can_open_is_refused(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "ds"), "--train", "1", "--long-side", "60000"]) == 2
    assert "long_side must satisfy 128 <= lo <= hi <= 8192" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
