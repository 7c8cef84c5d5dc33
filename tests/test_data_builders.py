"""Dataset builders: synthetic pages, the OmniDocBench demo pages and an image+markdown folder, written as parquet
shards that `datasets` loads with splits and the Image feature; the `ocr2-data` command line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_helpers import page_image
from data_pipelines.build_synth import build_synth
from data_pipelines.cli import main
from data_pipelines.folder import build_folder
from data_pipelines.omnidocbench import build_omnidocbench, load_pages
from data_pipelines.synth.config import SynthConfig
from ocr2.data.markdown import blocks_to_markdown, normalize_markdown
from ocr2.data.schema import COLUMNS

DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "omnidocbench_demo"
needs_demo = pytest.mark.skipif(not (DEMO / "OmniDocBench_demo.json").is_file(),
                                reason=f"OmniDocBench demo pages not found at {DEMO}")
SMALL = SynthConfig(long_side=(384, 384), languages={"en": 1.0})


def _load(out: Path, tmp_path: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf_cache"))


def _rows(out: Path, split: str) -> list[dict]:
    files = sorted((out / "data").glob(f"{split}-*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_synth_dataset_loads_with_splits_and_the_image_feature(tmp_path):
    out = tmp_path / "synth"
    build_synth(out, {"train": 6, "validation": 2}, SMALL, rows_per_shard=4, row_group_size=2)
    ds = _load(out, tmp_path)
    assert {k: v.num_rows for k, v in ds.items()} == {"train": 6, "validation": 2}
    assert set(ds["train"].features) == set(COLUMNS)
    assert isinstance(ds["train"].features["image"], datasets.Image)
    row = ds["train"][0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (row["width"], row["height"])
    assert row["markdown"] == blocks_to_markdown(json.loads(row["blocks"]), json.loads(row["relations"]))
    assert sorted((out / "data").glob("*.parquet"))[0].name == "train-00000-of-00002.parquet"
    assert json.loads((out / "ocr2_dataset.json").read_text())["splits"] == {"train": 6, "validation": 2}


def test_synth_output_does_not_depend_on_the_number_of_workers(tmp_path):
    build_synth(tmp_path / "one", {"train": 5}, SMALL, workers=1)
    build_synth(tmp_path / "two", {"train": 5}, SMALL, workers=2)
    assert _rows(tmp_path / "one", "train") == _rows(tmp_path / "two", "train")


@needs_demo
def test_omnidocbench_demo_pages_keep_the_benchmark_ground_truth(tmp_path):
    out = tmp_path / "odb"
    info = build_omnidocbench(out, DEMO / "OmniDocBench_demo.json", DEMO / "images")
    rows = {r["id"]: r for r in _rows(out, "test")}
    pages = {Path(p["page_info"]["image_path"]).stem: p for p in load_pages(DEMO / "OmniDocBench_demo.json")}
    assert info["splits"] == {"test": 18} and set(rows) == set(pages)
    for stem, page in pages.items():
        assert json.loads(rows[stem]["blocks"]) == page["layout_dets"]
        assert rows[stem]["image"]["bytes"] == (DEMO / "images" / page["page_info"]["image_path"]).read_bytes()
    assert {r["lang"] for r in rows.values()} <= {"en", "zh", "mixed"}


@needs_demo
def test_markdown_from_blocks_reproduces_the_benchmark_markdown_files():
    def clean(md):  # figures are image links in the benchmark's files; we have no figure crops to link
        return normalize_markdown(re.sub(r"!\[\]\([^)]*\)\n*", "", md))

    differ = []
    for page in load_pages(DEMO / "OmniDocBench_demo.json"):
        stem = Path(page["page_info"]["image_path"]).stem
        ours = blocks_to_markdown(page["layout_dets"], page["extra"]["relation"])
        if clean(ours) != clean((DEMO / "gt_markdown" / f"{stem}.md").read_text()):
            differ.append(stem)
    # The one known difference: the benchmark's file repeats a paragraph when merging a 3-piece truncated chain.
    assert [s[:10] for s in differ] == ["eastmoney_"]


@needs_demo
def test_omnidocbench_page_with_a_missing_image_is_skipped_and_counted(tmp_path):
    pages = load_pages(DEMO / "OmniDocBench_demo.json")[:2]
    pages[1]["page_info"]["image_path"] = "missing.jpg"
    (tmp_path / "gt.json").write_text(json.dumps(pages))
    info = build_omnidocbench(tmp_path / "out", tmp_path / "gt.json", DEMO / "images")
    assert info["splits"] == {"test": 1} and info["skipped"] == {"bad_image": 1}


def test_folder_builder_pairs_images_with_markdown_and_counts_the_rest(tmp_path):
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.png", "sub/b.jpg", "c.png", "d.png", "e.png"]):
        page_image(i).save(root / rel)
    (root / "a.md").write_text("# A\n\nfirst page")
    (root / "sub" / "b.md").write_text("第二页的文字")
    (root / "c.md").write_text("  \n")  # empty
    (root / "e.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # corrupt, d.png has no markdown
    (root / "e.md").write_text("text")
    info = build_folder(tmp_path / "out", root, validation_fraction=0.0)
    assert info["splits"] == {"train": 2, "validation": 0}
    assert info["skipped"] == {"bad_image": 1, "empty_text": 1, "no_markdown": 1}
    rows = {r["id"]: r for r in _rows(tmp_path / "out", "train")}
    assert rows["a.png"]["markdown"] == "# A\n\nfirst page" and rows["sub/b.jpg"]["lang"] == "zh"
    assert rows["sub/b.jpg"]["image"]["bytes"] == (root / "sub" / "b.jpg").read_bytes()


def test_cli_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--train", "3", "--validation", "1", "--long-side", "320",
                 "--languages", "en", "--no-degrade"]) == 0
    assert "{'train': 3, 'validation': 1}" in capsys.readouterr().out
    info = json.loads((out / "ocr2_dataset.json").read_text())
    assert info["config"]["long_side"] == [320, 320] and info["config"]["degrade"]["p_jpeg"] == 0.0


def test_cli_reports_a_bad_input_file_by_name(tmp_path, capsys):
    assert main(["omnidocbench", str(tmp_path / "o"), "--json", str(tmp_path / "nope.json"),
                 "--images", str(tmp_path)]) == 2
    assert "nope.json: cannot read OmniDocBench JSON" in capsys.readouterr().err


def test_python_dash_m_data_pipelines_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "data_pipelines", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert result.returncode == 0 and "synth" in result.stdout and "omnidocbench" in result.stdout


def test_folder_builder_refuses_binary_markdown_as_ground_truth(tmp_path):
    root = tmp_path / "scans"
    root.mkdir()
    for name, md in [("good", "# Title\n\nText.".encode()), ("latin1", b"caf\xe9 \xff\xfe"), ("nul", b"ab\x00cd")]:
        page_image(0).save(root / f"{name}.png")
        (root / f"{name}.md").write_bytes(md)
    info = build_folder(tmp_path / "ds", root, validation_fraction=0.0)
    assert info["splits"]["train"] == 1 and info["skipped"] == {"bad_markdown": 2}


def test_blocks_that_are_not_json_are_a_named_bad_record():
    from ocr2.data.schema import sample_blocks
    from ocr2.data.skips import BadSample

    with pytest.raises(BadSample, match="sample p7: its blocks are not JSON") as err:
        sample_blocks({"id": "p7", "blocks": "[{oops"})
    assert err.value.reason == "bad_record"
