"""Training on foreign datasets without converting them: `data.columns` maps a parquet dataset's columns onto ours
(Hub layout, Image-feature structs or relative paths, no id column), and `data.source=hub` streams with datasets
(split_dataset_by_node over ranks, datasets' own split over loader workers) - offline, on local folders."""

import json

import datasets
import pytest
from hydra import compose, initialize_config_dir

from data_formats_helpers import foreign_row, offline, write_hub_layout  # noqa: F401 - offline is a fixture
from data_helpers import page_image
from ocr2 import OCR2Config
from ocr2.data import DataConfig, TrainLoader
from ocr2.processing.text import ByteTokenizer
from train.builders import build_run_model_config
from train.data import data_config
from train_harness import ROOT

CFG = OCR2Config.from_preset("tiny")
TOK = ByteTokenizer()
MAPPING = {"id": "key", "image": "png", "text": "md", "prompt": "instruction"}


@pytest.fixture(autouse=True)
def _offline(offline):
    pass


def _loader(path, rank=0, world_size=1, **options) -> TrainLoader:
    cfg = dict(path=str(path), views=("single:768",), batch_size=1, max_length=2048, num_workers=0, epochs=1)
    return TrainLoader(DataConfig(**{**cfg, **options}), TOK, CFG, rank=rank, world_size=world_size)


def _ids(loader, limit=None) -> list[str]:
    out = []
    for n, _ in enumerate(loader, start=1):
        out += loader.last_ids
        if n == limit:
            break
    return out


ALL = sorted(f"k{i:03d}" for i in range(12))


def test_parquet_in_the_hub_layout_trains_through_a_column_mapping(tmp_path):
    data = write_hub_layout(tmp_path / "foreign", 12)
    loader = _loader(data, columns=MAPPING, num_workers=2)  # the mapped stream travels to worker processes
    assert sorted(_ids(loader)) == ALL and loader.skip_counts() == {}


def test_relative_image_paths_and_no_id_column_name_the_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "pages").mkdir()
    for i in range(3):
        page_image(i).save(tmp_path / "pages" / f"{i}.png")
    (tmp_path / "train").mkdir()
    table = pa.table({"file": ["pages/0.png", "pages/1.png", "pages/missing.png"], "text": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "train" / "part.parquet")
    loader = _loader(tmp_path, columns={"image": "file", "text": "text"}, shuffle=False)
    assert _ids(loader) == ["part.parquet row 0", "part.parquet row 1"]
    assert loader.skip_counts() == {"bad_image": 1}


def test_a_mapped_column_the_dataset_lacks_is_one_error_naming_the_file_and_its_columns(tmp_path):
    data = write_hub_layout(tmp_path / "foreign", 4, shards=1)
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet: dataset lacks column\(s\) \['text'\].*"
                                         r"it has \['instruction', 'key', 'md', 'png'\]"):
        _loader(data, columns={**MAPPING, "text": "text"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['markdown'\]"):
        _loader(data, columns={"markdown": "md"})


def test_hydra_overrides_map_the_columns(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=micro", f"data.path={tmp_path}",
                                                      "data.columns.image=png", "data.columns.text=md"])
    d = data_config(cfg, build_run_model_config(cfg))
    assert d.columns == {"id": None, "image": "png", "text": "md", "prompt": None} and d.source == "parquet"


@pytest.mark.parametrize("world_size,workers", [(2, 2), (3, 0)])
def test_a_hub_stream_splits_over_ranks_and_workers_exactly(tmp_path, world_size, workers):
    data = write_hub_layout(tmp_path / "hub", 12)
    seen = []
    for rank in range(world_size):
        seen += _ids(_loader(data, rank, world_size, source="hub", columns=MAPPING, num_workers=workers))
    assert sorted(seen) == ALL


def test_a_hub_stream_resumes_without_repeats_or_gaps(tmp_path):
    data = write_hub_layout(tmp_path / "hub", 12)
    first = _loader(data, source="hub", columns=MAPPING, shuffle_buffer=4)
    head = _ids(first, limit=5)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = _loader(data, source="hub", columns=MAPPING, shuffle_buffer=4)
    resumed.load_state_dict(state)
    tail = _ids(resumed)
    assert sorted(head + tail) == ALL and not set(head) & set(tail)
    assert head + tail == _ids(_loader(data, source="hub", columns=MAPPING, shuffle_buffer=4))


def test_a_save_to_disk_folder_streams_as_a_hub_source(tmp_path):
    rows = [foreign_row(i) for i in range(6)]
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in rows[0]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    assert sorted(_ids(_loader(tmp_path / "saved", source="hub", columns=MAPPING))) == ALL[:6]


def test_a_hub_source_that_cannot_be_opened_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"data.path=nobody/nothing \(data.source=hub, split 'train'\)"):
        _loader("nobody/nothing", source="hub")
