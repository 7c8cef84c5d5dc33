"""`ocr2-data pdf`: PDFs with their per-page markdown -> the page dataset schema, one row per page.

Pages are rendered at the release's 144 dpi (ocr2/documents.py `iter_pages`, the same rendering `ocr2-infer` reads
PDFs with), so training and reading see the same pixels. All pages of a document go to the same split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from data_pipelines.records import Bad, Page, RecordProblem, build_records, page_row
from data_pipelines.writer import encode_image
from ocr2.documents import PDF_DPI, iter_pages, pdf_page_count

SEPARATOR = "<!-- page -->"
PAGE_FILE = re.compile(r"^page_(\d+)\.md$")

FORMAT = f"""\
FOLDER is searched recursively for PDFs; each comes with its markdown in one of two ways:
  docs/report.pdf + docs/report/page_001.md, docs/report/page_002.md, ...
      one file per page, numbered from 1 (any zero padding); a page without its file is skipped
  docs/report.pdf + docs/report.md
      the pages' markdown in one file, separated by lines that are exactly `{SEPARATOR}`
      (--page-separator to change), as many parts as the PDF has pages, e.g.
        # Report
        First page text ...
        {SEPARATOR}
        Second page text ...
a document whose markdown does not match its pages (more parts or page files than pages, both forms present,
none) is skipped whole; empty pages are skipped. Pages are rendered at {PDF_DPI} dpi (as ocr2-infer reads PDFs);
ids are <path without .pdf>_p0001, ...; the pages of one PDF all go to the same split. Bad documents and pages
are skipped, counted and logged with the file and page; --strict stops at the first one instead."""


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordProblem("bad_markdown", f"{path}: not UTF-8 text ({e})") from e


def page_markdown(pdf: Path, pages: int, separator: str = SEPARATOR) -> dict[int, tuple[str, str]]:
    """Page index (from 0) -> (markdown, where it comes from) for the pages that have markdown; RecordProblem
    when the document's markdown cannot be matched with its pages."""
    folder, single = pdf.with_suffix(""), pdf.with_suffix(".md")
    if folder.is_dir() and single.is_file():
        raise RecordProblem("bad_record", f"both {folder}/ and {single} hold its markdown; keep one")
    if single.is_file():
        parts = re.split(rf"^[ \t]*{re.escape(separator.strip())}[ \t]*\r?$", _read(single), flags=re.MULTILINE)
        if len(parts) != pages:
            raise RecordProblem("bad_record", f"{single} has {len(parts)} page(s) ({len(parts) - 1} `{separator}` "
                                              f"line(s)) but the PDF has {pages}")
        return {i: (part, f"{single} part {i + 1}") for i, part in enumerate(parts)}
    if not folder.is_dir():
        raise RecordProblem("no_markdown", f"no markdown: expected {folder}/page_001.md ... or {single}")
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        m = PAGE_FILE.match(path.name)
        if not m:
            continue
        n = int(m.group(1))
        if n in found:
            raise RecordProblem("bad_record", f"{found[n].name} and {path.name} are both page {n}")
        if not 1 <= n <= pages:
            raise RecordProblem("bad_record", f"{path} is page {n} but the PDF has {pages} page(s)")
        found[n] = path
    if not found:
        raise RecordProblem("no_markdown", f"{folder}/ holds no page_<n>.md files")
    return {n - 1: (_read(path), str(path)) for n, path in found.items()}


def pdf_records(folder: str | Path, split: str | None = None, separator: str = SEPARATOR,
                image_format: str = "png") -> Iterator[Page | Bad]:
    folder = Path(folder)
    for pdf in sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file()):
        rel = pdf.relative_to(folder).with_suffix("").as_posix()
        pages = pdf_page_count(pdf)
        if not pages:
            yield Bad(str(pdf), "bad_image", f"{pdf}: cannot open the PDF, or it has no pages")
            continue
        try:
            markdown = page_markdown(pdf, pages, separator)
        except RecordProblem as e:
            yield Bad(str(pdf), e.reason, f"{e.detail} (the whole document is skipped)")
            continue
        for i in range(pages):
            if i not in markdown:
                yield Bad(f"{pdf} page {i + 1}", "no_markdown", f"no {pdf.with_suffix('')}/page_{i + 1:03d}.md")
        for i, image in iter_pages(pdf, skip={i for i in range(pages) if i not in markdown}):
            if image is None:
                continue
            where = f"{pdf} page {(i or 0) + 1}"
            if isinstance(image, Exception):
                yield Bad(where, "bad_image", str(image))
                continue
            text, source = markdown[i]
            try:
                row = page_row(f"{rel}_p{i + 1:04d}", encode_image(image, image_format), image, text, None,
                               f"pdf:{folder.name}")
            except RecordProblem as e:
                yield Bad(where, e.reason, f"{source}: {e.detail}")
                continue
            yield Page(where, rel, row, split)


def build_pdf(out_dir: str | Path, folder: str | Path, split: str | None = None, validation_fraction: float = 0.05,
              separator: str = SEPARATOR, image_format: str = "png", strict: bool = False,
              rows_per_shard: int = 1000, row_group_size: int = 64, command: str = "") -> dict[str, Any]:
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not separator.strip():
        raise ValueError("--page-separator must not be blank: blank lines are part of markdown")
    info = {"builder": "pdf", "command": command, "folder": str(folder), "page_separator": separator,
            "dpi": PDF_DPI}
    return build_records(out_dir, pdf_records(folder, split, separator, image_format), f"pdf {folder}", info,
                         (split,) if split else ("train", "validation"), validation_fraction, strict,
                         rows_per_shard, row_group_size)
