"""Training checkpoints: DeepSpeed state per step, an atomically switched `latest` pointer, keep-last-K pruning,
and (optionally) a consolidated `from_pretrained` directory beside each one.

Layout: `<run_dir>/checkpoints/step_000010/` (DeepSpeed's files + `model/` consolidated safetensors) and
`<run_dir>/checkpoints/latest` (a one-line file naming the newest complete tag). The pointer is written to a
temporary file and renamed over the old one only after every rank finished saving, so a crash during a save
leaves the previous checkpoint as `latest`: resume never sees a half-written checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from train.dist import barrier, gather_objects
from train.safe_load import weights_only_loads

POINTER = "latest"
BEST = "best"  # names the checkpoint with the best validation metric (checkpoint.best_metric)


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def read_latest(ckpt_dir: Path) -> str | None:
    """The tag the `latest` pointer names (None without a pointer); whether it exists is the caller's check."""
    pointer = ckpt_dir / POINTER
    if not pointer.exists():
        return None
    return pointer.read_text().strip() or None


def _write_pointer(ckpt_dir: Path, tag: str, name: str = POINTER) -> None:
    tmp = ckpt_dir / f".{name}.tmp"
    tmp.write_text(tag + "\n")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, ckpt_dir / name)  # atomic on POSIX: readers see the old or the new tag, never a mix


def rng_state() -> dict:
    # numpy's state as plain data (name, keys as a list, pos, has_gauss, cached_gaussian): checkpoints hold only
    # tensors and plain containers, which the restricted unpickler (train/safe_load.py) reads without allow-lists.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


LOW_SPACE = 64 * 1024**2  # below this many free bytes a failed write is reported as a full disk


@contextlib.contextmanager
def disk_errors(path: Path):
    """A full disk surfaces from torch.save as `basic_ios::clear: iostream error` or a bare OSError; say what it is
    and where. The `latest` pointer is not moved, so the previous checkpoint stays the one to resume from."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        full = getattr(e, "errno", None) == errno.ENOSPC
        try:
            full = full or shutil.disk_usage(path.parent).free < LOW_SPACE
        except OSError:
            pass
        if not full:
            raise
        raise OSError(errno.ENOSPC, f"No space left on device while writing {path} ({type(e).__name__}: {e}); "
                                    f"a checkpoint's 'latest' pointer stays on the previous one") from e


class CheckpointManager:
    def __init__(self, run_dir: str | Path, keep_last: int, rank: int):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep_last, self.rank = keep_last, rank
        if rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, engine, step: int, per_rank: dict, shared: dict, save_model_dir=None,
             protect=(), best: bool = False) -> str:
        """Collective. `per_rank`: this rank's state (data position, ...), gathered so rank r restores its own.
        `save_model_dir(engine, path)`: writes the consolidated from_pretrained directory (collective on ZeRO-3).
        `protect`: tags pruning must keep (the last good one during a divergence, the best one). `best`: this
        checkpoint becomes the one the `best` pointer names."""
        tag = tag_for(step)
        per_rank = dict(per_rank, rng=rng_state())
        # Namespaced: DeepSpeed drops client keys that collide with its own (e.g. "skipped_steps") on load.
        client_state = {"ocr2": dict(shared, step=step, per_rank=gather_objects(per_rank))}
        with disk_errors(self.dir / tag):
            engine.save_checkpoint(str(self.dir), tag=tag, client_state=client_state, save_latest=False)
            if save_model_dir is not None:
                save_model_dir(engine, self.dir / tag / "model")
        barrier()
        if self.rank == 0:
            _write_pointer(self.dir, tag)
            if best:
                _write_pointer(self.dir, tag, BEST)
            self._prune(keep={tag, *(t for t in protect if t)})
        barrier()
        return tag

    def _prune(self, keep: set) -> None:
        """The newest `keep_last` checkpoints stay, and the tags in `keep` (e.g. the last one before a divergence)."""
        tags = sorted(p.name for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("step_"))
        for old in tags[:-self.keep_last] if self.keep_last > 0 else []:
            if old not in keep:
                shutil.rmtree(self.dir / old, ignore_errors=True)

    def resolve(self, resume: str) -> tuple[Path, str] | None:
        """`auto`: this run's latest checkpoint if any; `never`; or a path to a checkpoint tag directory."""
        if resume == "never":
            return None
        if resume == "auto":
            tag = read_latest(self.dir)
            if tag and not (self.dir / tag).is_dir():
                # Never restart from step 0 over newer checkpoints: that would overwrite them.
                found = sorted(p.name for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("step_"))
                raise FileNotFoundError(f"{self.dir / POINTER} names {tag}, which does not exist; checkpoints here: "
                                        f"{found or 'none'}. Resume one with checkpoint.resume=<its path>, or start "
                                        f"over with checkpoint.resume=never in a new run_dir")
            return (self.dir, tag) if tag else None
        path = Path(resume)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint.resume={resume}: not a checkpoint directory")
        return path.parent, path.name

    def load(self, engine, where: tuple[Path, str], world_size: int) -> dict:
        load_dir, tag = where
        with weights_only_loads():  # a planted .pt file is refused, never run (train/safe_load.py)
            _, client_state = engine.load_checkpoint(str(load_dir), tag=tag, load_optimizer_states=True,
                                                     load_lr_scheduler_states=False)
        if client_state is None or "ocr2" not in client_state:
            raise RuntimeError(f"{load_dir / tag}: not a loadable ocr2 training checkpoint")
        client_state = client_state["ocr2"]
        per_rank = client_state["per_rank"]
        if len(per_rank) != world_size:
            raise RuntimeError(f"{load_dir / tag} was written by {len(per_rank)} processes; exact resume needs "
                               f"the same world size (got {world_size})")
        mine = per_rank[self.rank]
        set_rng_state(mine["rng"])
        return dict(client_state, mine=mine)
