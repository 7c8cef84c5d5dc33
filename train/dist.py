"""Process-group setup from the environment (torchrun, the deepspeed launcher with --no_local_rank, SLURM)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str, default: int) -> int:
    for n in names:
        if n in os.environ:
            return int(os.environ[n])
    return default


def slurm_first_host(nodelist: str) -> str | None:
    """The first host of a SLURM node list ("gpu[07-09,12],cpu3" -> "gpu07"): rank 0's node, the rendezvous for
    jobs started by srun or the submitit launcher without a MASTER_ADDR."""
    nodelist = nodelist.strip()
    if not nodelist:
        return None
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            end = i
            break
    first = nodelist[:end]
    if "[" not in first:
        return first
    prefix, ranges = first.split("[", 1)
    return prefix + ranges.rstrip("]").split(",")[0].split("-")[0]


def init_distributed(backend: str = "auto", device: str = "auto") -> DistInfo:
    """Ranks come from RANK/WORLD_SIZE/LOCAL_RANK (torchrun, deepspeed) or SLURM_* when launched by srun; the device
    from train/device.py (`device`: auto | cpu | cuda; DS_ACCELERATOR is set to match)."""
    from train.device import decide_device

    rank = _env_int("RANK", "SLURM_PROCID", default=0)
    world = _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID", default=0)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
    os.environ.setdefault("MASTER_ADDR", slurm_first_host(os.environ.get("SLURM_JOB_NODELIST", "")) or "127.0.0.1")
    if world > 1:  # a lone process keeps its store in memory (below): no rendezvous port
        os.environ.setdefault("MASTER_PORT", "29500")
    if decide_device(device) == "cuda":
        torch.cuda.set_device(local)
        where = torch.device("cuda", local)
    else:
        where = torch.device("cpu")
    if backend == "auto":
        backend = "nccl" if where.type == "cuda" else "gloo"
    if not tdist.is_initialized():
        import deepspeed

        if backend == "gloo" and os.environ.get("OCR2_DS_SHM_COMM") != "1":
            skip_shm_comm_build()
        if world == 1:
            # A lone process keeps its store in memory: no port to pick, so single-process runs started together
            # (a sweep's jobs) never race for one (a free port found by one can be taken by another before use).
            tdist.init_process_group(backend, store=tdist.HashStore(), rank=0, world_size=1)
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
    return DistInfo(rank, world, local, where)


def skip_shm_comm_build() -> None:
    """DeepSpeed's torch backend compiles a C++ shared-memory op when it starts on CPU (30-80 s on 2 cores, again
    for every new virtual environment). Only `inference_all_reduce` uses it, which training never calls, so under
    gloo it is not built (OCR2_DS_SHM_COMM=1 builds it as DeepSpeed would; gloo all-reduces either way)."""
    import importlib

    # importlib, not `import deepspeed.comm.torch as ...`: deepspeed.comm's own `torch` attribute is the torch package
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    if hasattr(ds_torch, "build_shm_op"):
        ds_torch.build_shm_op = lambda: None


def barrier() -> None:
    if tdist.is_initialized():
        tdist.barrier()


def _comm_device() -> torch.device:
    # NCCL only reduces GPU tensors; gloo reduces CPU tensors.
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_over_ranks(x: float) -> float:
    if not tdist.is_initialized() or tdist.get_world_size() == 1:
        return float(x)
    t = torch.tensor([float(x)], dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t)
    return float(t.item())


def all_true(flag: bool) -> bool:
    """True on every rank only if `flag` is true on every rank (so all ranks take the same branch)."""
    return sum_over_ranks(0.0 if flag else 1.0) == 0.0


def gather_objects(obj):
    if not tdist.is_initialized():
        return [obj]
    out = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def to_device(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """A collated batch on the run's device; floating tensors (the views) in the run's dtype."""
    out = {}
    # Non-blocking: from pinned memory (CUDA runs) the copy overlaps the host's work; elsewhere it is a plain copy.
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = (v.to(device, dtype, non_blocking=True) if v.is_floating_point()
                 else v.to(device, non_blocking=True))
        out[k] = v
    return out
