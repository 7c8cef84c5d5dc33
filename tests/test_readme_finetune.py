"""The README's "Fine-tune DeepSeek-OCR 2 on your data" commands, run as written on tiny stand-ins.

The Hub id resolves from a local Hugging Face cache built here (HF_HUB_OFFLINE=1, nothing downloaded) that holds a
tiny model in the release's layout with the release's special ids and a stand-in of its tokenizer; the
manifests point at a few synthetic page images. Only `hf download` is skipped (it needs the network), and the
training commands get a few extra overrides so that they take seconds. `ocr2-data` runs in this process (its
console-script function, data_pipelines.cli:main, in the manifests' folder): it reads no environment; the others
run as processes, since they resolve the Hub id through the cache given in their environment.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_helpers import page_image
from data_pipelines.cli import main as data_main
from ocr2 import OCR2Config, OCR2Model
from ocr2.layouts import write_layout
from ocr2.processing.text import OFFICIAL_SPECIAL_IDS
from test_official_tokenizer import _write as write_official_tokenizer
from train_harness import ROOT, env

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODULES = {"ocr2-data": "data_pipelines", "ocr2-train": "train", "ocr2-export": "train.export",
           "ocr2-infer": "eval.infer"}
# Seconds instead of hours: one step of a tiny batch, validated and checkpointed (one checkpoint per run: the full
# run's is 327 MB).
TRAIN_QUICK = ["max_steps=1", "checkpoint.every=1", "trainer.micro_batch_size=2", "data.num_workers=0",
               "validation.every=1", "validation.batches=1", "logger=none"]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Fine-tune DeepSeek-OCR 2 on your data"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def _hub_cache(root: Path) -> None:
    """models--deepseek-ai--DeepSeek-OCR-2 in huggingface_hub's cache layout, in the release's weight layout."""
    repo = root / "models--deepseek-ai--DeepSeek-OCR-2"
    snap = repo / "snapshots" / COMMIT
    base = OCR2Config.from_preset("tiny")
    # The release's view geometry (1024² global, 768² crops): the hf layout holds only that.
    cfg = dataclasses.replace(
        base, encoder=dataclasses.replace(base.encoder, num_heads=2),
        decoder=dataclasses.replace(base.decoder, vocab_size=129_280, num_layers=2, num_heads=2, num_kv_heads=2),
        image_token_id=OFFICIAL_SPECIAL_IDS["<image>"], bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    tok_dir = write_official_tokenizer(root / "tokenizer")
    write_layout("official", cfg, OCR2Model(cfg).state_dict(), snap, tokenizer_dir=tok_dir)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


def _manifests(work: Path) -> None:
    (work / "pages").mkdir()
    for split, first, n in (("train", 0, 6), ("val", 6, 2)):
        lines = []
        for i in range(first, first + n):
            page_image(i, (256, 256)).save(work / "pages" / f"p{i}.png")
            lines.append(json.dumps({"image": f"pages/p{i}.png", "markdown": f"# Page {i}\n\nText of page {i}."}))
        (work / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    page_image(99, (256, 256)).save(work / "page.png")


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    argv = [sys.executable, "-m", MODULES[words[0]], *words[1:]]
    if words[0] == "ocr2-train":
        argv += TRAIN_QUICK
    if words[0] == "ocr2-infer":
        argv += ["--max-new-tokens", "8", "--out", "infer_out"]
    return argv


@pytest.mark.slow
def test_readme_finetune_commands_run_as_written(tmp_path, monkeypatch):
    commands = readme_commands()
    assert commands[0] == "hf download deepseek-ai/DeepSeek-OCR-2"
    _hub_cache(tmp_path / "hub")
    work = tmp_path / "work"
    work.mkdir()
    _manifests(work)
    e = env()
    e.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    monkeypatch.chdir(work)
    for line in commands[1:]:
        for command in line.split("&&"):
            words = shlex.split(command)
            if words[0] == "ocr2-data":
                assert data_main(words[1:]) == 0, command  # its output is in the captured stdout / stderr
                continue
            proc = subprocess.run(_argv(command.strip()), cwd=work, env=e, capture_output=True, text=True,
                                  timeout=600)
            assert proc.returncode == 0, f"{command}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert (work / "runs/mine_lora/checkpoints/latest").exists() and (work / "runs/mine_full/checkpoints/latest").exists()
    assert json.loads((work / "exported/mine_hf/config.json").read_text())["model_type"] == "deepseek_ocr2"
    assert (work / "infer_out/page.md").exists()
    val = [json.loads(line) for line in (work / "runs/mine_lora/metrics.jsonl").read_text().splitlines()]
    assert "val_loss" in val[-1]
