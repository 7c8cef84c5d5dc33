"""Small foreign datasets for the data-format tests, written locally (never downloaded), and the offline guard."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from data_helpers import page_image

FEATURES = datasets.Features({"key": datasets.Value("string"), "png": datasets.Image(),
                              "md": datasets.Value("string"), "instruction": datasets.Value("string")})


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No test may reach the network; datasets caches under tmp_path."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    # datasets waits 5 s after each shuffled parquet pass (an Arrow thread-shutdown workaround): once per epoch in
    # a run, but a test ends many passes.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.05)


def foreign_row(i: int) -> dict:
    return {"key": f"k{i:03d}", "png": page_image(i), "md": f"# Page {i}", "instruction": "Free OCR." if i % 2 else ""}


def foreign_dataset(rows: list[dict]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)


def write_hub_layout(root: Path, n: int, shards: int = 4, split: str = "train") -> Path:
    """`<root>/data/<split>-0000i-of-0000n.parquet` with an Image feature column, as the Hub stores datasets."""
    rows = [foreign_row(i) for i in range(n)]
    (root / "data").mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        foreign_dataset(rows[s::shards]).to_parquet(str(root / "data" / f"{split}-{s:05d}-of-{shards:05d}.parquet"))
    return root
