"""Pre-emption on CPU: SIGUSR1 / SIGTERM to a real training process -> it finishes the step, writes a checkpoint and
exits with the requeue code; the rerun resumes exactly (losses equal an uninterrupted run's)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from data_helpers import write_pages
from train.preemption import REQUEUE_EXIT
from train_harness import BASE, ROOT, env, losses, run_train, train_cmd

COMMON = ["max_steps=30", "checkpoint.every=100", "checkpoint.keep_last=2"]


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_both_signals_set_the_flag_and_the_handlers_are_restored(sig):
    import os

    from train.preemption import PreemptionFlag

    before = signal.getsignal(sig)
    flag = PreemptionFlag().install()
    os.kill(os.getpid(), sig)
    assert flag.signal == sig and flag.requested()
    flag.restore()
    assert signal.getsignal(sig) is before


@pytest.mark.slow
def test_a_signal_checkpoints_and_the_rerun_resumes_exactly(tmp_path, sig=signal.SIGUSR1):
    pages = write_pages(tmp_path / "pages", 16)
    run_train(pages, tmp_path / "full", COMMON)
    victim = tmp_path / "victim"
    args = BASE + [f"data.path={pages}", f"run_dir={victim}", *COMMON]
    proc = subprocess.Popen(train_cmd(args), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    log = victim / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    stopped_at = json.loads((victim / "summary.json").read_text())["steps"]
    assert 3 <= stopped_at < 30
    assert (victim / "checkpoints" / "latest").read_text().strip() == f"step_{stopped_at:06d}"
    run_train(pages, victim, COMMON)  # the requeued job: same command, checkpoint.resume=auto
    full, resumed = losses(tmp_path / "full"), losses(victim)
    assert all(resumed[s] == full[s] for s in range(stopped_at + 1, 31))
