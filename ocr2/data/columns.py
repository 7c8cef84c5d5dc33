"""Training on a dataset whose columns are named differently: `data.columns` maps ours onto its.

    data.columns.image=png data.columns.text=md data.columns.prompt=instruction data.columns.id=key

Our names are the schema's (ocr2/data/schema.py), with `text` for the markdown target. A key left null keeps our
column name (`id`, `image`, `markdown`, `prompt`). Only the markdown target reads foreign datasets: the grounded
target needs our `blocks`, which no other dataset has.

A row without an id (no `id` column, or an empty one) is named by where it is, `<file> row <n>`, so a skipped
sample's log line points at the record. Images given as relative paths (a string column, or a datasets Image
struct with a path and no bytes) are relative to the dataset's folder, as the Hub's layout stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

OURS = {"id": "id", "image": "image", "text": "markdown", "prompt": "prompt"}
OPTIONAL = ("id", "prompt")  # a dataset may lack these unless the mapping names them
WHERE = "__where__"  # the key ShardedStream(name_rows=True) puts the row's location under


@dataclass(frozen=True)
class ColumnMap:
    id: str | None = None
    image: str | None = None
    text: str | None = None
    prompt: str | None = None

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None) -> "ColumnMap":
        mapping = dict(mapping or {})
        unknown = sorted(set(mapping) - set(OURS))
        if unknown:
            raise ValueError(f"data.columns: unknown key(s) {unknown}; map any of {sorted(OURS)} onto the "
                             f"dataset's column names")
        bad = {k: v for k, v in mapping.items() if v is not None and (not isinstance(v, str) or not v)}
        if bad:
            raise ValueError(f"data.columns: column names must be non-empty strings, got {bad}")
        return cls(**mapping)

    @property
    def is_identity(self) -> bool:
        return all(getattr(self, k) in (None, v) for k, v in OURS.items())

    def source(self, key: str) -> str:
        return getattr(self, key) or OURS[key]

    def read_columns(self, ours: Sequence[str]) -> list[str]:
        """The dataset's names for the columns a target reads (given in our names)."""
        back = {v: k for k, v in OURS.items()}
        return [self.source(back[c]) if c in back else c for c in ours]

    def check(self, available: Sequence[str], where: str, target: str, needed: Sequence[str]) -> None:
        """Every column the target needs (`needed`, in our names) exists under its mapped name; one error naming
        the dataset, what is missing and what it has. `id`, `prompt` and `relations` are optional unless mapped."""
        if target != "markdown" and self.text is not None:
            raise ValueError(f"data.columns.text={self.text} maps the markdown target's text, but target={target!r} "
                             f"reads blocks; use target=markdown")
        back = {v: k for k, v in OURS.items()}
        missing = []
        for ours, theirs in zip(needed, self.read_columns(needed)):
            key = back.get(ours)
            optional = ours == "relations" or (key in OPTIONAL and getattr(self, key) is None)
            if theirs not in available and not optional:
                missing.append(theirs)
        if missing:
            raise ValueError(f"{where}: dataset lacks column(s) {missing} needed for target {target!r} (it has "
                             f"{sorted(available)}; map ours onto its names with data.columns.image=... "
                             f"data.columns.text=..., see ocr2/data/columns.py)")

    def apply(self, row: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
        """The row in our names (other columns kept as they are). Never raises: a wrong value is the encoder's
        to reject, as a skipped sample."""
        out = {k: v for k, v in row.items() if k != WHERE}
        for key in ("image", "prompt"):
            out[key] = row.get(self.source(key))
        out["markdown"] = row.get(self.source("text"))
        rid = row.get(self.source("id"))
        out["id"] = str(rid) if rid not in (None, "") else str(row.get(WHERE, "?"))
        if root is not None:
            out["image"] = _rooted(out["image"], root)
        return out


def _rooted(value: Any, root: Path) -> Any:
    """A relative image path made relative to the dataset folder instead of the working directory."""
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(root / value)
    if isinstance(value, dict) and not value.get("bytes") and isinstance(value.get("path"), str):
        return {**value, "path": _rooted(value["path"], root)}
    if isinstance(value, list):
        return [_rooted(v, root) for v in value]
    return value


class MappedStream:
    """A row stream (ShardedStream or HubStream) whose rows come out in our column names."""

    def __init__(self, stream, columns: ColumnMap, root: Path | None = None):
        self.stream, self.columns, self.root = stream, columns, root

    def __getattr__(self, name: str):  # num_rows, column_names, files, ... of the wrapped stream
        if name == "stream":  # not set yet (unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.stream, name)

    def iter_rows(self, *args, **kwargs) -> Iterator[tuple[Any, dict]]:
        for position, row in self.stream.iter_rows(*args, **kwargs):
            yield position, self.columns.apply(row, self.root)
