"""Resume refuses what would silently go wrong: a `latest` naming a missing checkpoint, a config changed in ways
that break exactness (shown, and accepted only when allowed); metrics.jsonl continues without repeated steps; a
resume with another seed no longer trips a false "frozen parameters changed"; ocr2-report reads a torn last line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from data_helpers import write_pages
from train.resume_check import check_resume, differences
from train_harness import metrics, run_train

COMMON = ["max_steps=4", "checkpoint.every=2", "checkpoint.keep_last=3"]


def test_differences_are_listed_and_only_free_ones_pass():
    saved = {"stage": {"lr": 1e-3}, "run_dir": "a", "checkpoint": {"every": 2}, "seed": 0}
    assert check_resume(saved, dict(saved, run_dir="b", checkpoint={"every": 5}), allow=False) == [
        "  checkpoint.every: 2 -> 5", "  run_dir: 'a' -> 'b'"]
    with pytest.raises(ValueError, match="stage.lr: 0.001 -> 0.01  \\(breaks exact resume\\)"):
        check_resume(saved, dict(saved, stage={"lr": 1e-2}), allow=False)
    assert differences(saved, dict(saved, seed=1)) == {"seed": (0, 1)}
    assert len(check_resume(saved, dict(saved, seed=1), allow=True)) == 1


def test_keys_added_since_the_checkpoint_pass_when_they_keep_the_old_behaviour():
    old = {"data": {"path": "d"}, "seed": 0}  # written before data.source, lora and validation existed
    now = {"data": {"path": "d", "source": "parquet", "shuffle_buffer": 1000, "columns": {"image": None}},
           "lora": {"enabled": False, "r": 16}, "seed": 0}
    assert check_resume(old, now, allow=False) == []


def test_a_key_added_since_the_checkpoint_with_new_behaviour_is_refused():
    old = {"data": {"path": "d"}}
    with pytest.raises(ValueError, match="data.source: None -> 'hub'"):
        check_resume(old, {"data": {"path": "d", "source": "hub"}}, allow=False)
    with pytest.raises(ValueError, match="lora.enabled: None -> True"):
        check_resume(old, {"data": {"path": "d"}, "lora": {"enabled": True, "r": 16}}, allow=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("resume")
    data = write_pages(tmp / "pages", 8)
    run_train(data, tmp / "run", COMMON)
    return tmp / "run", data


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.slow
def test_a_latest_pointer_to_a_missing_checkpoint_stops_with_an_error(run, tmp_path):
    victim = _copy(run[0], tmp_path)
    (victim / "checkpoints" / "latest").write_text("step_000099")
    before = sorted(p.name for p in (victim / "checkpoints").iterdir())
    proc = run_train(run[1], victim, COMMON, check=False)
    assert proc.returncode != 0 and "names step_000099, which does not exist" in proc.stderr
    assert sorted(p.name for p in (victim / "checkpoints").iterdir()) == before  # nothing overwritten


@pytest.mark.slow
def test_a_changed_lr_is_refused_with_the_difference_and_accepted_when_allowed(run, tmp_path):
    victim = _copy(run[0], tmp_path)
    (victim / "checkpoints" / "latest").write_text("step_000002")
    proc = run_train(run[1], victim, [*COMMON, "stage.lr=1e-2"], check=False)
    assert proc.returncode != 0 and "stage.lr: 5e-05 -> 0.01  (breaks exact resume)" in proc.stdout + proc.stderr
    proc = run_train(run[1], victim, [*COMMON, "stage.lr=1e-2", "checkpoint.allow_changes=true"])
    assert "resuming with config changes" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_metrics_continue_without_repeats_after_a_resume_and_a_torn_line(run, tmp_path):
    victim = _copy(run[0], tmp_path)
    (victim / "checkpoints" / "latest").write_text("step_000002")
    with open(victim / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # killed mid-write
    run_train(run[1], victim, COMMON)
    assert [m["step"] for m in metrics(victim)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_resume_with_another_seed_does_not_report_frozen_parameters_moving(run, tmp_path):
    victim = _copy(run[0], tmp_path)
    (victim / "checkpoints" / "latest").write_text("step_000002")
    proc = run_train(run[1], victim, [*COMMON, "seed=7", "checkpoint.allow_changes=true"], check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "frozen parameters changed" not in proc.stderr


def test_ocr2_report_reads_a_run_whose_last_line_is_torn(tmp_path):
    from eval.report import read_metrics

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + '\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]


def test_a_full_disk_during_a_checkpoint_says_so_with_the_path(tmp_path, monkeypatch):
    import errno
    from collections import namedtuple

    from train import checkpointing

    class Engine:  # torch.save's message when the disk fills up under DeepSpeed
        def save_checkpoint(self, *args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos; basic_ios::clear: "
                               "iostream error")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1024, 1024))
    manager = checkpointing.CheckpointManager(tmp_path, keep_last=2, rank=0)
    with pytest.raises(OSError, match="No space left on device while writing .*step_000005") as e:
        manager.save(Engine(), 5, {}, {})
    assert e.value.errno == errno.ENOSPC
    assert not (tmp_path / "checkpoints" / "latest").exists()  # the pointer was not moved


def test_a_full_disk_during_export_says_so_with_the_path(tmp_path, monkeypatch, capsys):
    import errno

    from ocr2 import OCR2Config, OCR2Model
    from train import export

    tag = tmp_path / "run" / "checkpoints" / "step_000001"
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tag / "model")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step_000001")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.shutil, "copy2", full)
    assert export.main([str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    assert f"No space left on device while writing {tmp_path / 'out'}" in capsys.readouterr().err
