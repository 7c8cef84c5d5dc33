"""`ocr2-data hf`: a save_to_disk folder, parquet in the Hub layout, or a parquet file of paths into the page
dataset, with a column mapping; missing columns are one error naming the source; bad rows named by split and row.
Offline: every source is a local folder written here."""

import logging

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_formats_helpers import foreign_dataset, foreign_row, offline, write_hub_layout  # noqa: F401 - fixture
from data_helpers import page_image
from data_pipelines.cli import main
from data_pipelines.hf import build_hf

MAP = dict(image_column="png", text_column="md", prompt_column="instruction", id_column="key")


@pytest.fixture(autouse=True)
def _offline(offline):
    pass


def _rows(out, split="train") -> dict[str, dict]:
    return {r["id"]: r for f in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(f).to_pylist()}


def test_a_save_to_disk_folder_keeps_its_splits_and_maps_the_columns(tmp_path):
    src = tmp_path / "saved"
    datasets.DatasetDict({"train": foreign_dataset([foreign_row(i) for i in range(4)]),
                          "test": foreign_dataset([foreign_row(i) for i in range(4, 6)])}).save_to_disk(str(src))
    out = tmp_path / "out"
    info = build_hf(out, str(src), **MAP)
    assert info["splits"] == {"train": 4, "test": 2} and info["skipped"] == {}
    rows = _rows(out)
    assert rows["k001"]["markdown"] == "# Page 1" and rows["k001"]["prompt"] == "<image>\nFree OCR."
    assert rows["k000"]["prompt"] is None  # an empty prompt cell: the run's data.prompt applies
    assert (rows["k000"]["width"], rows["k000"]["height"]) == (96, 128) and set(_rows(out, "test")) == {"k004", "k005"}
    assert datasets.load_dataset(str(out), cache_dir=str(tmp_path / "c"))["train"].num_rows == 4


def test_hub_layout_parquet_converts_one_split_and_can_hash_a_validation_split(tmp_path):
    src = write_hub_layout(tmp_path / "hub", 12, shards=2)
    out = tmp_path / "out"
    info = build_hf(out, str(src), split="train", validation_fraction=0.3, **MAP)
    assert sum(info["splits"].values()) == 12 and info["splits"]["validation"] > 0
    assert set(_rows(out)) | set(_rows(out, "validation")) == {f"k{i:03d}" for i in range(12)}


def test_a_parquet_file_of_relative_paths_with_default_columns_and_a_bad_row(tmp_path, caplog):
    (tmp_path / "img").mkdir()
    page_image(0).save(tmp_path / "img" / "a.png")
    pq.write_table(pa.table({"image": ["img/a.png", "img/gone.png"], "text": ["A", "B"]}), tmp_path / "t.parquet")
    with caplog.at_level(logging.WARNING, logger="ocr2.data"):
        info = build_hf(tmp_path / "out", str(tmp_path / "t.parquet"))
    assert info["splits"] == {"train": 1} and info["skipped"] == {"missing_image": 1}
    assert _rows(tmp_path / "out")["train-00000000"]["markdown"] == "A"  # `text` found, id from split and row
    assert f"{tmp_path / 't.parquet'} [train] row 1" in caplog.text and "gone.png" in caplog.text
    with pytest.raises(ValueError, match=r"\[train\] row 1: .*gone.png: no such image file"):
        build_hf(tmp_path / "out", str(tmp_path / "t.parquet"), strict=True)


def test_missing_columns_are_one_error_naming_the_source_and_its_columns(tmp_path, capsys):
    src = write_hub_layout(tmp_path / "hub", 2, shards=1)
    with pytest.raises(ValueError, match=r"hub \[train\]: no column\(s\) \['image', 'markdown'\] \(it has "
                                         r"\['instruction', 'key', 'md', 'png'\]\); name the right ones with "
                                         r"--image-column <name> --text-column <name>"):
        build_hf(tmp_path / "out", str(src))
    assert main(["hf", str(src), str(tmp_path / "out"), "--split", "test"]) == 2
    assert "no split 'test'; it has ['train']" in capsys.readouterr().err
    assert main(["hf", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "cannot open it as a Hugging Face dataset" in capsys.readouterr().err


def test_help_shows_the_sources_and_a_row(capsys):
    with pytest.raises(SystemExit):
        main(["hf", "--help"])
    text = capsys.readouterr().out
    assert "save_to_disk" in text and "<dir>/data/train-00000-of-00002.parquet" in text
    assert '{"image": {"bytes":' in text and "--text-column" in text and "data.columns.image" in text
