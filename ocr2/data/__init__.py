"""Training data: the page sample schema, targets from blocks, a sharded resumable stream, examples, collation.

    from ocr2.data import DataConfig, TrainLoader
    loader = TrainLoader(DataConfig(path="data/synth", views=("single:768", "single:1024"), packing=True, max_length=4096),
                         tokenizer, model_config, rank=rank, world_size=world_size)
    for batch in loader:            # dict of OCR2Model.forward keyword arguments
        ...
    loader.state_dict(); loader.skip_counts()

Datasets are written by `ocr2-data` (data_pipelines/); this package only reads them, or reads a foreign dataset
through a column mapping (columns.py) or streamed from the Hub (hub.py): see docs/data_formats.md.
"""

from ocr2.data.collate import BatchBuilder, collate, collate_packed
from ocr2.data.columns import ColumnMap
from ocr2.data.examples import Example, ExampleEncoder, default_prompt, open_image
from ocr2.data.loader import DataConfig, PageBatches, TrainLoader
from ocr2.data.markdown import blocks_to_markdown, grounded_markdown, reading_order_blocks
from ocr2.data.prompts import sample_prompt
from ocr2.data.schema import COLUMNS, make_sample, sample_blocks, sample_features, sample_relations
from ocr2.data.skips import REASONS, BadSample, SkipCounter, merge_counts
from ocr2.data.sources import SOURCES, open_stream
from ocr2.data.stream import Position, ShardedStream, find_parquet_files

__all__ = [
    "BatchBuilder", "collate", "collate_packed", "ColumnMap", "sample_prompt", "SOURCES", "open_stream",
    "Example", "ExampleEncoder", "default_prompt", "open_image",
    "DataConfig", "PageBatches", "TrainLoader",
    "blocks_to_markdown", "grounded_markdown", "reading_order_blocks",
    "COLUMNS", "make_sample", "sample_blocks", "sample_features", "sample_relations",
    "REASONS", "BadSample", "SkipCounter", "merge_counts",
    "Position", "ShardedStream", "find_parquet_files",
]
