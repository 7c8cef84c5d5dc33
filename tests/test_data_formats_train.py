"""ocr2-train on foreign data without conversion: a Hub-layout parquet folder streamed with data.source=hub and
its columns mapped with data.columns, through the real trainer (a process, offline)."""

from data_formats_helpers import write_hub_layout
from train_harness import metrics, run_train


def test_training_streams_a_hub_layout_folder_with_mapped_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    data = write_hub_layout(tmp_path / "hub", 8, shards=2)
    run = tmp_path / "run"
    run_train(data, run, ["data.source=hub", "data.columns.id=key", "data.columns.image=png", "data.columns.text=md",
                          "data.columns.prompt=instruction", "data.shuffle_buffer=4", "max_steps=2",
                          "checkpoint.every=100"])
    steps = [m for m in metrics(run) if "loss" in m]  # training steps (not validation lines)
    assert [m["step"] for m in steps] == [1, 2] and not any(m.get("data_skipped") for m in steps)
