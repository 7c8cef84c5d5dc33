"""One device decision for a training process, honoured by DeepSpeed's accelerator and by our own code alike.

DeepSpeed picks its accelerator from `DS_ACCELERATOR` (else it probes for CUDA) when it is first imported; our code
picks the device, the process-group backend and the precision. If the two disagreed (the CPU test harness or the
demo sets DS_ACCELERATOR=cpu on a machine that can see a GPU), DeepSpeed would run its CPU accelerator on CUDA
tensors with an NCCL group. So the decision is made here, once: `trainer.device` (auto | cpu | cuda), where an
explicit DS_ACCELERATOR wins over auto, and the result is written back to DS_ACCELERATOR before DeepSpeed loads.
"""

from __future__ import annotations

import os

import torch

CHOICES = ("auto", "cpu", "cuda")


def decide_device(requested: str = "auto") -> str:
    """'cpu' or 'cuda' for this process; sets DS_ACCELERATOR to match."""
    if requested not in CHOICES:
        raise ValueError(f"trainer.device={requested!r}: choose from {CHOICES}")
    env = os.environ.get("DS_ACCELERATOR", "").strip().lower()
    if requested == "auto":
        if env in ("cpu", "cuda"):
            requested = env
        else:
            requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda (or DS_ACCELERATOR=cuda) but no CUDA device is visible")
    if env and env != requested:
        raise RuntimeError(f"DS_ACCELERATOR={env} contradicts trainer.device={requested}; set one of them")
    os.environ["DS_ACCELERATOR"] = requested
    return requested
