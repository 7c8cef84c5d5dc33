"""No checkpoint read runs code: a payload planted in any DeepSpeed `.pt` file that a resume (`auto` or a path)
or `ocr2-export --from-zero` reads is refused with an error naming the file, and the payload never runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_helpers import write_pages
from train.safe_load import weights_only_loads
from train_harness import ROOT, env, run_train

MARKER = "PAYLOAD_RAN"


class _Payload:
    """Unpickling this calls `exec`, which writes the marker file: what a forged checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('x')",))


def _plant(pt: Path, marker: Path) -> None:
    with weights_only_loads():  # the genuine file reads under the restricted loader; then the payload goes in
        state = torch.load(pt)
    state["extra"] = _Payload(marker)
    torch.save(state, pt)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("safe")
    data = write_pages(tmp / "pages", 8)
    run = tmp / "run"
    run_train(data, run, ["trainer=zero2", "max_steps=1", "checkpoint.every=1"])
    return run, data


def _checkpoint_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints" / "step_000001").glob("*.pt"))


def test_the_checkpoint_has_model_and_optimizer_files(trained):
    files = _checkpoint_files(trained[0])
    assert any("model_states" in f for f in files) and any("optim_states" in f for f in files)


def test_a_genuine_checkpoint_resumes_under_the_restricted_loader(trained, tmp_path):
    run, data = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    proc = run_train(data, copy, ["trainer=zero2", "max_steps=2", "checkpoint.every=1", "checkpoint.allow_changes=true"])
    assert "resumed from" in proc.stdout + proc.stderr


# Every file each reader opens: a resume reads both files (auto and an explicit path take the same route after
# resolving the tag, so the path is tried on one file), the ZeRO merge of ocr2-export reads both.
CASES = [("resume_auto", "model_states"), ("resume_auto", "optim_states"), ("resume_path", "model_states"),
         ("export", "model_states"), ("export", "optim_states")]


@pytest.mark.slow
@pytest.mark.parametrize("how,kind", CASES)
def test_a_planted_payload_is_refused_and_never_runs(trained, tmp_path, how, kind):
    run, data = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # a run directory copied from elsewhere
    tag = copy / "checkpoints" / "step_000001"
    (pt,) = [p for p in tag.glob("*.pt") if kind in p.name]
    marker = tmp_path / MARKER
    _plant(pt, marker)
    if how == "export":
        proc = subprocess.run([sys.executable, "-m", "train.export", str(copy), "--out", str(tmp_path / "out"),
                               "--from-zero"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    else:
        resume = "auto" if how == "resume_auto" else str(tag)
        proc = run_train(data, copy if how == "resume_auto" else tmp_path / "fresh",
                         ["trainer=zero2", "max_steps=2", f"checkpoint.resume={resume}",
                          "checkpoint.allow_changes=true"], check=False)
    assert proc.returncode != 0
    assert not marker.exists(), "the payload ran"
    assert pt.name in proc.stderr and "refused to load" in proc.stderr
