"""`ocr2-data synth`: render synthetic pages in worker processes and write them as a dataset.

Page i of split s is `PageGenerator.page(page_seed(seed, s, i))`, and results are written in index order, so the
dataset is byte-identical for a given seed and config whatever the number of workers. A config's `extra_splits`
(e.g. the demo's `validation_unseen`: fonts, sizes and offsets no training page has) are rendered beside
`validation`, as many pages, each from its own variant of the config.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from data_pipelines.synth.config import SynthConfig
from data_pipelines.synth.page import PageGenerator, page_seed
from data_pipelines.staging import require_pages, staged_dataset
from data_pipelines.writer import SplitWriter, encode_image, write_build_info

log = logging.getLogger("ocr2.data")

_generators: dict[str, PageGenerator] = {}
_image_format = "png"


def _init_worker(config: SynthConfig, splits: list[str], image_format: str) -> None:
    global _generators, _image_format
    _generators = {split: PageGenerator(config.for_split(split)) for split in splits}
    _image_format = image_format


def _render(task: tuple[str, int, int]) -> dict[str, Any]:
    split, index, seed = task
    page = _generators[split].page(page_seed(seed, split, index), page_id=f"synth-{split}-{index:08d}")
    row = page.to_sample()
    row["image"] = encode_image(page.image, _image_format)
    return row


def build_synth(out_dir: str | Path, splits: dict[str, int], config: SynthConfig, seed: int = 0, workers: int = 1,
                rows_per_shard: int = 1000, row_group_size: int = 64, image_format: str = "png",
                command: str = "") -> dict[str, Any]:
    """Render `splits` ({name: number of pages}) into `out_dir`; returns the build info written beside it."""
    splits = {**splits, **{name: splits.get("validation", 0) for name in config.extra_splits}}
    for split in splits:
        PageGenerator(config.for_split(split))  # fail fast (fonts) and print the CJK message once, in this process
    tasks = [(split, i, seed) for split, n in splits.items() for i in range(n)]
    with staged_dataset(out_dir, [s for s, n in splits.items() if n]) as staging:
        return _build(staging, out_dir, tasks, splits, config, seed, workers, rows_per_shard, row_group_size,
                      image_format, command)


def _build(staging: Path, out_dir, tasks, splits, config, seed, workers, rows_per_shard, row_group_size,
           image_format, command) -> dict[str, Any]:
    writers = {split: SplitWriter(staging, split, rows_per_shard, row_group_size) for split, n in splits.items() if n}
    start = time.perf_counter()
    bar = tqdm(total=len(tasks), desc="synth pages", unit="page", smoothing=0.1)
    if workers <= 1:
        _init_worker(config, list(splits), image_format)
        results = map(_render, tasks)
        pool = None
    else:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(config, list(splits), image_format))
        results = pool.imap(_render, tasks, chunksize=4)
    try:
        for (split, _, _), row in zip(tasks, results):
            writers[split].write(row)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    for w in writers.values():
        w.close()
    counts = {split: w.rows for split, w in writers.items()}
    require_pages(counts, f"synth {out_dir}")
    elapsed = time.perf_counter() - start
    info = {"builder": "synth", "command": command, "seed": seed, "splits": counts, "workers": workers,
            "image_format": image_format, "seconds": round(elapsed, 1),
            "pages_per_second": round(len(tasks) / elapsed, 2) if elapsed else None, "config": config.to_dict()}
    write_build_info(staging, info)
    log.info("wrote %s to %s (%.1f pages/s with %d workers)", counts, out_dir, len(tasks) / max(elapsed, 1e-9),
             workers)
    return info
