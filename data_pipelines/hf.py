"""`ocr2-data hf`: a Hugging Face dataset (a `save_to_disk` folder, parquet in the Hub's layout, or a Hub id) ->
the page dataset schema, its columns mapped onto ours.

Rows are read one at a time (parquet and Hub ids are streamed, `save_to_disk` folders memory-mapped), images as
stored bytes (never decoded by datasets, then checked once here). To train on such a dataset without converting
it, see `data.columns` / `data.source=hub` (ocr2/data/columns.py, ocr2/data/hub.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from data_pipelines.records import Bad, Page, RecordProblem, build_records, image_from_value, page_row
from ocr2.data.prompts import sample_prompt
from ocr2.data.skips import BadSample

FORMAT = """\
SOURCE is one of:
  a save_to_disk folder         (dataset_dict.json or state.json inside; Dataset.save_to_disk)
  a folder in the Hub's layout  <dir>/data/train-00000-of-00002.parquet ..., or <dir>/<split>/*.parquet
  a parquet file                (one split: train)
  a Hub id, e.g. org/name       (fetched by datasets into its cache; HF_HUB_OFFLINE=1 reads the cache only)
a row, e.g. {"image": {"bytes": b"\\x89PNG...", "path": null}, "text": "# Title ...", "instruction": "Free OCR."}
  --image-column image --text-column text --prompt-column instruction
columns: the image (datasets Image feature, bytes, or a file path relative to SOURCE's folder), the target
markdown (default: `markdown`, else `text`), optional prompt (default: `prompt` if present; see ocr2-data jsonl
--help for how prompts are read) and id (default: `id` if present, else <split>-<row>).
splits: kept as the source has them (--split NAME: only that one); --validation-fraction F also moves a hashed
fraction F of train to validation. Bad rows are skipped, counted and logged with their split and row number;
--strict stops at the first one instead.
to train on such a dataset without converting it: ocr2-train data.path=SOURCE data.columns.image=png
data.columns.text=text (parquet), or data.source=hub data.path=org/name (streamed); see docs/data_formats.md."""


def _saved_to_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def open_source(source: str, subset: str | None = None) -> dict[str, Any]:
    """split -> a datasets Dataset or IterableDataset; ValueError naming the source when datasets cannot open it."""
    import datasets

    path = Path(source)
    try:
        if _saved_to_disk(path):
            ds = datasets.load_from_disk(str(path))
            return dict(ds) if isinstance(ds, datasets.DatasetDict) else {"train": ds}
        if path.is_file():
            if path.suffix != ".parquet":
                raise ValueError("a file SOURCE must be a .parquet file")
            return dict(datasets.load_dataset("parquet", data_files={"train": str(path)}, streaming=True))
        if not path.exists() and (source.startswith((".", "/")) or source.count("/") != 1):
            raise FileNotFoundError(f"no such file or folder, and not a Hub id (org/name)")
        return dict(datasets.load_dataset(source, name=subset, streaming=True))
    except Exception as e:  # noqa: BLE001 - datasets raises DatasetNotFoundError, FileNotFoundError, ValueError, ...
        raise ValueError(f"{source}: cannot open it as a Hugging Face dataset ({type(e).__name__}: {e})") from e


def _undecoded(ds):
    """Images as the bytes they are stored as: decoded (and checked) once, by us."""
    import datasets

    for name, feature in (ds.features or {}).items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image):
            ds = ds.cast_column(name, datasets.List(datasets.Image(decode=False)))
    return ds


def resolve_columns(names: list[str], where: str, image: str, text: str | None, prompt: str | None,
                    id: str | None) -> dict[str, str | None]:
    """Our column -> the source's; one error naming the source, the missing columns and those it has."""
    text = text or next((c for c in ("markdown", "text") if c in names), "markdown")
    wanted = {"image": image, "text": text, "prompt": prompt, "id": id}
    missing = {k: v for k, v in wanted.items() if v is not None and v not in names}
    if missing:
        flags = " ".join(f"--{k}-column <name>" for k in missing)
        raise ValueError(f"{where}: no column(s) {sorted(missing.values())} (it has {sorted(names)}); name the "
                         f"right ones with {flags}")
    wanted["prompt"] = prompt or ("prompt" if "prompt" in names else None)
    wanted["id"] = id or ("id" if "id" in names else None)
    return wanted


def hf_records(source: str, splits: dict[str, Any], columns: dict[str, dict[str, str | None]],
               validation_fraction: float = 0.0) -> Iterator[Page | Bad]:
    """Every row of every split (`columns`: per split, ours -> the source's) as a Page or a Bad naming it."""
    path = Path(source)
    root = path if path.is_dir() else path.parent if path.is_file() else None
    for split, ds in splits.items():
        ds, cols = _undecoded(ds), columns[split]
        to = None if validation_fraction and split == "train" else split
        for i, row in enumerate(ds):
            where = f"{source} [{split}] row {i}"
            rid = row.get(cols["id"]) if cols["id"] else None
            rid = str(rid) if rid not in (None, "") else f"{split}-{i:08d}"
            try:
                stored, image = image_from_value(row.get(cols["image"]), root)
                try:
                    prompt = sample_prompt(row.get(cols["prompt"]) if cols["prompt"] else None)
                except BadSample as e:
                    raise RecordProblem(e.reason, e.detail.removeprefix("?: ")) from e
                page = page_row(rid, stored, image, row.get(cols["text"]), prompt, f"hf:{path.name or source}")
            except RecordProblem as e:
                yield Bad(where, e.reason, e.detail)
                continue
            yield Page(where, rid, page, to)


def build_hf(out_dir: str | Path, source: str, split: str | None = None, image_column: str = "image",
             text_column: str | None = None, prompt_column: str | None = None, id_column: str | None = None,
             subset: str | None = None, validation_fraction: float = 0.0, strict: bool = False,
             rows_per_shard: int = 1000, row_group_size: int = 64, command: str = "") -> dict[str, Any]:
    splits = open_source(source, subset)
    if split is not None:
        if split not in splits:
            raise ValueError(f"{source}: no split {split!r}; it has {sorted(splits)}")
        splits = {split: splits[split]}
    columns = {}
    for name, ds in splits.items():  # every split must have the columns: one error before anything is written
        names = list(ds.features) if ds.features is not None else list(next(iter(ds), {}))
        columns[name] = resolve_columns(names, f"{source} [{name}]", image_column, text_column, prompt_column,
                                        id_column)
    out_splits = list(splits) + (["train", "validation"] if validation_fraction else [])
    info = {"builder": "hf", "command": command, "source": str(source), "columns": columns}
    return build_records(out_dir, hf_records(source, splits, columns, validation_fraction), f"hf {source}", info,
                         out_splits, validation_fraction, strict, rows_per_shard, row_group_size)
