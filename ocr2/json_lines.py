"""Reading a JSON-lines file that a killed process may have left with a torn last line.

Lines are split on "\n" only: `json.dumps(..., ensure_ascii=False)` writes U+2028, U+0085 and other characters
that `str.splitlines()` also treats as line breaks, and a record holding one would be cut in two.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_json_lines(path: str | Path) -> list:
    """The decoded records of `path`, in order; lines that do not parse (torn by a kill mid-write) are left out."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
