"""Pre-emption: SIGTERM or SIGUSR1 (what SLURM sends before a time limit or a pre-emption, with `--signal`) makes
the trainer finish the step it is in, write a checkpoint and exit with REQUEUE_EXIT, so the job script can requeue
it (train/launch/slurm.sbatch); the next start resumes from that checkpoint exactly (checkpoint.resume=auto).

The handler only sets a flag: a checkpoint written from inside a signal handler, halfway through a step, could not be
resumed exactly. Ranks decide together, once per step (one all-reduce of a flag), because a checkpoint is a
collective: one rank stopping alone would hang the others. The trainer folds the flag into the all-reduce it already
makes for the step's figures (train/step_totals.py), so pre-emption costs no extra sync.
"""

from __future__ import annotations

import signal

REQUEUE_EXIT = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(SystemExit):
    """Raised after the pre-emption checkpoint is written; its exit code asks the job script to requeue."""

    def __init__(self, message: str):
        super().__init__(REQUEUE_EXIT)
        self.message = message


class PreemptionFlag:
    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def install(self) -> "PreemptionFlag":
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def requested(self) -> bool:
        """True on every rank when any rank got a signal (a collective: every rank must call it each step)."""
        from train.dist import sum_over_ranks

        return sum_over_ranks(1.0 if self.signal is not None else 0.0) > 0
