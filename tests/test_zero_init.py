"""ZeRO-3 builds the model under deepspeed.zero.Init (train/zero_init.py): partitioned as it is created, with the
ordinary build's values (fresh from the seed, or from init_from) and fp32 RoPE buffers.

Fast tests check the record-and-replay of initialisers and the buffer rebuild without DeepSpeed; the slow ones run
the trainer's builder and training in real processes (torchrun, gloo, 2 ranks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from data_helpers import write_pages
from ocr2 import OCR2Config, OCR2Model
from train.zero_init import deferred_init, rebuild_buffers, replay
from train_harness import BASE, ROOT, env, free_port, initial_checkpoint, losses, run_train

# ---------------------------------------------------------------------------------------------- without DeepSpeed


def test_replayed_initialisers_give_the_ordinary_build():
    cfg = OCR2Config.from_preset("tiny")
    torch.manual_seed(3)
    expected = OCR2Model(cfg).state_dict()
    torch.manual_seed(3)
    calls = []
    with deferred_init(calls):
        model = OCR2Model(cfg)
    recorded = {id(c.tensor) for c in calls}
    with torch.no_grad():
        for p in model.parameters():
            if id(p) in recorded:  # what replay must write (the rest keep their creation values: ones, zeros)
                p.fill_(float("nan"))
    replay(calls, model, write=lambda p, value: p.data.copy_(value))
    got = model.state_dict()
    assert [k for k in expected if not torch.equal(got[k], expected[k])] == []


def test_initialisers_are_recorded_not_run_during_the_build():
    calls = []
    with deferred_init(calls):
        layer = nn.Linear(4, 3)
        with torch.no_grad():
            layer.weight.fill_(7.0)
        nn.init.normal_(layer.weight)
    assert torch.all(layer.weight == 7.0)
    assert [c.fn.__name__ for c in calls] == ["kaiming_uniform_", "uniform_", "normal_"]
    assert nn.init.normal_ is calls[-1].fn  # restored afterwards


def test_fan_in_of_a_partitioned_placeholder_is_its_whole_shape():
    placeholder = nn.Parameter(torch.empty(0))
    placeholder.ds_shape = torch.Size([6, 5, 3, 3])  # what ZeRO-3 leaves: an empty tensor and the real shape
    with deferred_init([]):
        assert nn.init._calculate_fan_in_and_fan_out(placeholder) == (45, 54)


def test_rope_frequencies_are_rebuilt_in_fp32():
    model = OCR2Model(OCR2Config.from_preset("tiny"))
    ropes = [m for m in model.modules() if hasattr(m, "rebuild_buffers")]
    assert ropes
    exact = [m.inv_freq.clone() for m in ropes]
    for m in ropes:
        m._buffers["inv_freq"] = m.inv_freq.to(torch.bfloat16)  # as zero.Init's wrapped torch.arange makes it
    rebuild_buffers(model)
    assert all(m.inv_freq.dtype == torch.float32 and torch.equal(m.inv_freq, e) for m, e in zip(ropes, exact))


def test_a_buffer_that_cannot_be_rebuilt_is_an_error():
    module = nn.Module()
    module.register_buffer("table", torch.zeros(3), persistent=False)
    with pytest.raises(RuntimeError, match="trainer.zero_init=false"):
        rebuild_buffers(module)


@pytest.mark.parametrize("overrides, expected", [(["trainer=zero3"], True), (["trainer=gpu_zero3"], True),
                                                 (["trainer=zero3", "trainer.zero_init=false"], False),
                                                 (["trainer=zero2"], False), (["trainer=cpu"], False)])
def test_zero_init_is_on_for_stage3_unless_turned_off(overrides, expected):
    from hydra import compose, initialize_config_dir

    from configs import CONFIG_DIR
    from train.builders import uses_zero_init

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    assert uses_zero_init(cfg.trainer) is expected


# ---------------------------------------------------------------------------------------------- real processes

# Wide enough that the fp32 model (~700 MB) dwarfs its largest tensor (9 MB) and the processes' own noise.
LARGE = ["model.decoder.hidden_size=768", "model.decoder.num_layers=16", "model.decoder.moe_intermediate_size=384",
         "model.decoder.intermediate_size=2048"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    write_pages(root, 16)
    return root


@pytest.fixture(scope="module")
def base_run(pages, tmp_path_factory) -> Path:
    """The init_from run: what `run_train(pages, run, ["max_steps=0", "seed=5"])` leaves (its initial checkpoint),
    written in this process."""
    run = tmp_path_factory.mktemp("base") / "run"
    return initial_checkpoint(run, [*BASE, f"data.path={pages}", "seed=5"])


@pytest.fixture(scope="module")
def probed(base_run, tmp_path_factory) -> list[list[dict]]:
    """tests/zero_init_probe.py on 2 ranks: a fresh large model, then init_from whole and for one module."""
    out = tmp_path_factory.mktemp("probe")
    cases = [LARGE, [f"init_from={base_run}", "model=checkpoint"],
             ["model=micro", "model.decoder.num_layers=2", f"init_from={base_run}", "init_modules=[encoder]"]]
    e = env()
    # Allocations of 1 MiB and more are mmapped and returned on free: RSS is then the live memory, not what glibc's
    # heap kept from earlier frees (its adaptive threshold would put the build's 5-10 MB tensors in the heap).
    e["MALLOC_MMAP_THRESHOLD_"] = str(2**20)
    args = [a for case in cases for a in ("--", *case)][1:]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", "tests/zero_init_probe.py", str(out), *args],
                          cwd=ROOT, env=e, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return [[json.loads((out / str(i) / f"rank{r}.json").read_text()) for r in range(2)] for i in range(len(cases))]


@pytest.mark.slow
def test_stage3_builds_under_zero_init(probed):
    for rank in probed[0]:
        part = rank["partitioned"]
        assert part["all_have_ds_id"] and part["all_not_available"] and part["placeholder_elements"] == 0
        assert part["local_elements"] <= part["full_elements"] / 2 + 1000  # this rank's share, a little padding


@pytest.mark.slow
def test_rope_buffers_stay_fp32_and_exact_under_zero_init(probed):
    for case in probed:
        for rank in case:
            assert rank["partitioned"]["rope"] and all(r == {"dtype": "torch.float32", "exact": True}
                                                       for r in rank["partitioned"]["rope"])


@pytest.mark.slow
def test_zero_init_build_holds_no_full_fp32_copy(probed):
    for rank in probed[0]:
        rss = rank["rss"]
        # Half the model (this rank's partitions) plus one tensor in flight, not the whole model.
        assert rss["zero_init_growth"] < 0.7 * rss["model_bytes"], rss


@pytest.mark.slow
def test_the_memory_figure_sees_a_whole_copy_in_the_ordinary_build(probed):
    for rank in probed[0]:
        assert rank["rss"]["ordinary_growth"] > 0.9 * rank["rss"]["model_bytes"], rank["rss"]


@pytest.mark.slow
@pytest.mark.parametrize("case", [0, 1, 2], ids=["fresh", "init_from", "init_modules"])
def test_zero_init_build_equals_the_ordinary_build(probed, case):
    assert [rank["mismatches"] for rank in probed[case]] == [[], []]


# Training after the build is the ordinary ZeRO-3 path; that a fresh zero.Init build is bit for bit the ordinary one
# is checked above (case "fresh"), so one training comparison (from init_from, the fine-tuning start) suffices.
@pytest.mark.slow
def test_zero3_with_zero_init_trains_like_zero0_from_init_from(pages, base_run, tmp_path):
    common = ["max_steps=3", "checkpoint.every=3", f"init_from={base_run}", "model=checkpoint", "stage.lr=1e-3"]
    run_train(pages, tmp_path / "zero0", common, nproc=2)
    proc = run_train(pages, tmp_path / "zero3", [*common, "trainer=zero3"], nproc=2)
    assert "built under deepspeed.zero.Init" in proc.stdout + proc.stderr
    zero0, zero3 = losses(tmp_path / "zero0"), losses(tmp_path / "zero3")
    assert zero0.keys() == zero3.keys() == {1, 2, 3}
    assert max(abs(zero0[s] - zero3[s]) for s in zero0) <= 1e-5
