"""Run by tests/test_zero_init.py in real processes (torchrun, gloo, DeepSpeed's CPU accelerator): the trainer's
own builder (train/init_model.build_start) for a composed ZeRO-3 config, under zero.Init and the ordinary way.

    python -m torch.distributed.run --nproc_per_node 2 tests/zero_init_probe.py OUT_DIR OVERRIDES [-- OVERRIDES ...]

Each `--`-separated group of Hydra overrides is one case (on top of trainer=zero3); writes OUT_DIR/<i>/rank<r>.json:
- `partitioned`: for the zero.Init build, before deepspeed.initialize: whether every parameter carries `ds_id`,
  is NOT_AVAILABLE (released to its placeholder) and how many elements this rank holds; RoPE buffers' dtypes and
  whether they equal freshly computed fp32 frequencies;
- `rss`: the build's peak host memory growth per rank (ru_maxrss after the build minus the RSS before it: an upper
  bound of the build's own peak) for the zero.Init build, then the ordinary build, beside the fp32 model's bytes;
- `mismatches`: parameters and buffers whose values differ between the two builds (each gathered whole).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import psutil
import torch


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def probe(out: Path, overrides: list[str], info) -> None:
    import deepspeed
    from hydra import compose, initialize_config_dir

    from configs import CONFIG_DIR
    from train.builders import build_deepspeed_config, resolve_precision, uses_zero_init
    from train.init_model import build_start

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["trainer=zero3", *overrides])

    dtype = resolve_precision(cfg.trainer.precision, info.device, 3)
    ds_config = build_deepspeed_config(cfg.trainer, info.world_size, dtype)
    assert uses_zero_init(cfg.trainer), "the probe expects trainer=zero3 with zero_init on"

    torch.manual_seed(int(cfg.seed))
    before = _rss()
    part = build_start(cfg, dtype, info.device, zero_init=ds_config).model
    part_growth = _peak() - before
    params = list(part.parameters())
    report = {"partitioned": {
        "all_have_ds_id": all(hasattr(p, "ds_id") for p in params),
        "all_not_available": all(getattr(p, "ds_status", None) is not None and p.ds_status.name == "NOT_AVAILABLE"
                                 for p in params),
        "placeholder_elements": sum(p.numel() for p in params),
        "local_elements": sum(p.ds_tensor.numel() for p in params),
        "full_elements": sum(p.ds_numel for p in params),
        "rope": [{"dtype": str(m.inv_freq.dtype), "exact": bool(torch.equal(m.inv_freq, m._inv_freq(None)))}
                 for m in part.modules() if hasattr(m, "rebuild_buffers")],
    }}
    full_bytes = sum(p.ds_numel for p in params) * torch.finfo(dtype).bits // 8

    torch.manual_seed(int(cfg.seed))
    before = _rss()
    whole = build_start(cfg, dtype, info.device).model
    whole_growth = _peak() - before
    report["rss"] = {"zero_init_growth": part_growth, "ordinary_growth": whole_growth, "model_bytes": full_bytes}

    mismatches = []
    ours = dict(part.named_parameters())
    for name, p in whole.named_parameters():
        with deepspeed.zero.GatheredParameters([ours[name]]):
            if not torch.equal(ours[name].data, p.data):
                mismatches.append(name)
    theirs = dict(whole.named_buffers())
    mismatches += [n for n, b in part.named_buffers() if b.dtype != theirs[n].dtype or not torch.equal(b, theirs[n])]
    report["mismatches"] = mismatches
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{info.rank}.json").write_text(json.dumps(report))


def main() -> None:
    from train.dist import init_distributed

    out, cases, current = Path(sys.argv[1]), [], []
    for arg in sys.argv[2:] + ["--"]:
        if arg == "--":
            cases.append(current)
            current = []
        else:
            current.append(arg)
    info = init_distributed("gloo", "cpu")
    for i, overrides in enumerate(cases):  # the first case's memory figures are the clean ones (a fresh process)
        probe(out / str(i), overrides, info)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
