"""TrainLoader with real DataLoader worker processes: exact sharding over ranks x workers, exact resume, and
bad samples skipped and counted by reason."""

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_helpers import page_row, write_pages, write_split
from data_pipelines.writer import encode_image
from ocr2 import OCR2Config
from ocr2.data import DataConfig, TrainLoader
from ocr2.processing.text import ByteTokenizer

CFG = OCR2Config.from_preset("tiny")
TOK = ByteTokenizer()


def _loader(path, rank=0, world_size=1, **overrides) -> TrainLoader:
    options = dict(path=str(path), views=("single:768",), batch_size=2, max_length=1024,
                   num_workers=2, epochs=1, mix=2)
    options.update(overrides)
    return TrainLoader(DataConfig(**options), TOK, CFG, rank=rank, world_size=world_size)


def _consume(loader, limit=None) -> list[str]:
    ids = []
    for n, _ in enumerate(loader, start=1):
        ids += loader.last_ids
        if n == limit:
            break
    return ids


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return write_pages(tmp_path_factory.mktemp("loader"), 26)


ALL = [f"p{i:04d}" for i in range(26)]


def test_two_ranks_with_two_workers_each_see_every_sample_exactly_once(pages):
    seen = _consume(_loader(pages, rank=0, world_size=2)) + _consume(_loader(pages, rank=1, world_size=2))
    assert sorted(seen) == ALL


@pytest.mark.parametrize("packing", [False, True])
def test_resume_from_state_dict_continues_without_repeats_or_gaps(pages, packing):
    options = dict(packing=packing, batch_size=1 if packing else 2, max_length=800 if packing else 1024)
    first = _loader(pages, **options)
    head = _consume(first, limit=3)
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores must be plain data
    resumed = _loader(pages, **options)
    resumed.load_state_dict(state)
    tail = _consume(resumed)
    assert sorted(head + tail) == ALL and not set(head) & set(tail)


def test_resume_with_another_reader_layout_is_refused(pages):
    first = _loader(pages)
    _consume(first, limit=1)
    with pytest.raises(ValueError, match="world_size x workers = 1 x 2, now 1 x 3"):
        _loader(pages, num_workers=3).load_state_dict(first.state_dict())


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    good = [page_row(i) for i in range(10)]
    png = encode_image(page_row(0)["image"]["bytes"])["bytes"]
    bad_image = [page_row(100, image=b"\x89PNG\r\n\x1a\n garbage"), page_row(101, image=png[: len(png) // 2])]
    empty = [page_row(200, markdown=""), page_row(201, markdown="   \n\t"), page_row(202, markdown="\n")]
    too_long = [page_row(300, markdown="x" * 5000)]
    # Decodes, but no view can be made of it (a 768-wide view would be 0 px high).
    sliver = [page_row(400, image=Image.new("RGB", (10000, 4), "white"))]
    rows = (good[:3] + bad_image[:1] + empty[:2] + good[3:7] + too_long + bad_image[1:] + sliver + good[7:]
            + empty[2:])
    return write_split(tmp_path_factory.mktemp("poisoned"), "train", rows)


def test_poisoned_dataset_skips_and_counts_each_bad_sample_by_reason(poisoned):
    loader = _loader(poisoned)
    seen = _consume(loader)
    assert sorted(seen) == [f"p{i:04d}" for i in range(10)]
    assert loader.skip_counts() == {"bad_image": 2, "empty_text": 3, "too_long": 1, "encode_error": 1}
    assert loader.report() == "skipped 7 samples: bad_image=2, empty_text=3, encode_error=1, too_long=1"


def test_skipped_samples_are_logged_with_id_and_reason(poisoned, caplog):
    with caplog.at_level(logging.WARNING, logger="ocr2.data"):
        _consume(_loader(poisoned, num_workers=0))
    text = caplog.text
    assert "skipped sample p0100 (bad_image" in text and "skipped sample p0300 (too_long" in text
    assert "tokens (145 image positions) > max_length 1024" in text
    assert "skipped sample p0400 (encode_error" in text
    assert "data exhausted: skipped 7 samples" in text  # the end-of-data summary


def test_an_unreadable_row_group_names_its_shard(tmp_path):
    data = write_pages(tmp_path / "ds", 6)
    shard = sorted((data / "data").glob("*.parquet"))[0]
    raw = bytearray(shard.read_bytes())
    raw[200:1200] = b"\0" * 1000  # inside the first row group's pages; the footer stays readable
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{shard.name}: row group 0 is unreadable"):
        _consume(_loader(data, num_workers=0))


def test_a_dataset_without_the_markdown_column_is_refused_by_name(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['image', 'markdown'\]"):
        _loader(tmp_path)
