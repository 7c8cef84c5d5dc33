"""ShardedStream: every row read exactly once per epoch by exactly one reader, and an exact resume position."""

import pyarrow.parquet as pq
import pytest

from data_helpers import write_pages
from ocr2.data.stream import Position, ShardedStream, find_parquet_files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_pages(tmp_path_factory.mktemp("stream"), 41)  # 41 rows: 6 shards of <= 7, row groups of <= 3


def _ids(stream, consumer, consumers, start=Position(), epochs=1, limit=None):
    out = []
    for _, row in stream.iter_rows(consumer, consumers, start, epochs):
        out.append(row["id"])
        if limit is not None and len(out) == limit:
            break
    return out


def test_the_writer_produced_uneven_shards_and_row_groups(dataset):
    files = find_parquet_files(dataset, "train")
    groups = [pq.ParquetFile(f).metadata.row_group(g).num_rows for f in files
              for g in range(pq.ParquetFile(f).metadata.num_row_groups)]
    assert len(files) == 6 and sum(groups) == 41 and len(set(groups)) > 1


@pytest.mark.parametrize("consumers", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("shuffle", [False, True])
def test_readers_cover_every_row_exactly_once_per_epoch(dataset, consumers, shuffle):
    stream = ShardedStream(find_parquet_files(dataset), columns=["id"], seed=3, shuffle=shuffle, mix=2)
    seen = [i for c in range(consumers) for i in _ids(stream, c, consumers)]
    assert sorted(seen) == [f"p{i:04d}" for i in range(41)]
    sizes = [len(_ids(stream, c, consumers)) for c in range(consumers)]
    assert max(sizes) - min(sizes) <= 1


def test_shuffled_order_changes_with_the_epoch_and_is_reproducible(dataset):
    files = find_parquet_files(dataset)
    a = ShardedStream(files, columns=["id"], seed=0)
    epoch0, epoch1 = _ids(a, 0, 1, epochs=2)[:41], _ids(a, 0, 1, epochs=2)[41:]
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1
    assert _ids(ShardedStream(files, columns=["id"], seed=0), 0, 1) == epoch0
    assert _ids(ShardedStream(files, columns=["id"], seed=1), 0, 1) != epoch0


@pytest.mark.parametrize("stop", [1, 5, 19, 20])
def test_resuming_from_a_position_continues_exactly(dataset, stop):
    stream = ShardedStream(find_parquet_files(dataset), columns=["id"], seed=5, mix=3)
    full = _ids(stream, 1, 2, epochs=2)  # 20 rows per epoch for reader 1 of 2, two epochs
    position = None
    for k, (position, _) in enumerate(stream.iter_rows(1, 2, Position(), epochs=2), start=1):
        if k == stop:
            break
    assert _ids(stream, 1, 2, start=position, epochs=2) == full[stop:]


def test_too_many_readers_for_the_rows_is_a_clear_error(dataset):
    stream = ShardedStream(find_parquet_files(dataset), columns=["id"])
    with pytest.raises(ValueError, match="fewer than the 64 readers"):
        next(stream.iter_rows(0, 64))


def test_missing_split_names_the_folder_and_the_patterns(dataset):
    with pytest.raises(FileNotFoundError, match="no parquet shards for split 'nope'"):
        find_parquet_files(dataset, "nope")


def test_a_corrupt_parquet_file_is_named(tmp_path):
    bad = tmp_path / "data" / "train-00000-of-00001.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="train-00000-of-00001.parquet: not a readable parquet file"):
        ShardedStream(find_parquet_files(tmp_path))
