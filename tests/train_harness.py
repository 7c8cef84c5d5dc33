"""Run ocr2-train in real processes (python -m train, or torchrun for several ranks) on a tiny dataset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tiny model at reduced views, short answers: a step takes well under a second on 2 cores.
BASE = ["model=micro", "model.decoder.num_layers=2", "trainer=cpu", "trainer.micro_batch_size=2", "data.num_workers=1",
        "logger=none", "log_every=1", "seed=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ)
    e.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", WANDB_MODE="disabled",
             TOKENIZERS_PARALLELISM="false")
    e.pop("RANK", None), e.pop("WORLD_SIZE", None), e.pop("LOCAL_RANK", None)
    return e


def train_cmd(overrides: list[str], nproc: int = 1, nnodes: int = 1, node_rank: int = 0, port: int | None = None):
    if nproc == 1 and nnodes == 1:
        return [sys.executable, "-m", "train", *overrides]
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--node_rank={node_rank}",
            f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1", f"--master_port={port or free_port()}",
            "-m", "train", *overrides]


def run_train(data: Path, run_dir: Path, overrides: list[str], nproc: int = 1, timeout: int = 600,
              check: bool = True) -> subprocess.CompletedProcess:
    args = BASE + [f"data.path={data}", f"run_dir={run_dir}", *overrides]
    for attempt in range(3):
        proc = subprocess.run(train_cmd(args, nproc), cwd=ROOT, env=env(), capture_output=True, text=True,
                              timeout=timeout)
        # Tests run on two workers: a free port found by one can be taken by the other before torchrun binds it.
        if nproc == 1 or proc.returncode == 0 or "EADDRINUSE" not in proc.stderr + proc.stdout:
            break
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def initial_checkpoint(run_dir: Path, overrides: list[str]) -> Path:
    """What `ocr2-train ... max_steps=0` leaves for init_from, written in this process (no trainer start-up): the
    run's `checkpoints/latest` -> `step_000000/model/` with the model the trainer builds (train.init_model's
    build_start after torch.manual_seed(seed)), its reading recipe and tokenizer, as train/tuning.py's writer saves
    them. Single-process fp32 runs without LoRA only (the DeepSpeed partitions beside model/ are not written)."""
    import torch
    from hydra import compose, initialize_config_dir

    from configs import CONFIG_DIR
    from ocr2.weights import save_state_dict
    from train.builders import build_reading, resolve_precision
    from train.init_model import build_start

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"run_dir={run_dir}", "max_steps=0"])
    assert not cfg.get("lora", {}).get("enabled") and int(cfg.trainer.zero_stage) == 0, "a plain fp32 run only"
    torch.manual_seed(int(cfg.seed))  # as train.trainer.train does before building
    dtype = resolve_precision(cfg.trainer.precision, torch.device("cpu"), 0)
    start = build_start(cfg, dtype, torch.device("cpu"))
    model_dir = run_dir / "checkpoints" / "step_000000" / "model"
    save_state_dict(start.config, start.model.state_dict(), model_dir, reading=build_reading(cfg, start.config))
    start.tokenizer.save(model_dir)
    (run_dir / "checkpoints" / "latest").write_text("step_000000\n")
    return run_dir


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in metrics(run_dir)}
