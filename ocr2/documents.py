"""Documents in: files, folders and PDFs -> pages, each with a name of its own.

A page's name is what its outputs are called (`<name>.md`, `<name>.json`). Names are decided for all inputs at
once, before anything is read, so that distinct inputs always get distinct outputs and a rerun finds the outputs
of the pages it already read: the file stem when it is unique among the inputs; otherwise the path below the
inputs' common folder with its suffix (`a/same.png`, `a/same.jpg`, `b/same.png` -> `a__same_png`, `a__same_jpg`,
`b__same_png`). PDF pages add `_p0001`, ...; an image whose name equals a PDF page's gets its suffix appended.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from ocr2.processing.image import ImageError, load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
PDF_DPI = 144  # the release rasterises PDFs at 144 dpi (zoom 2.0, its run_dpsk_ocr2_pdf.py)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to their images and PDFs (sorted, non-recursive). A file named twice
    is read once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        found = (sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".pdf"})
                 if path.is_dir() else [path])
        for p in found:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def _is_pdf(path: Path) -> bool:
    return path.suffix.lower() == ".pdf"


def pdf_page_count(path: Path) -> int:
    """Pages of a PDF from its header (no rendering); 0 for a file that cannot be opened or has no pages (it
    yields one file-level error, named like the file)."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception:  # pypdfium2 raises PdfiumError for empty/broken files
        return 0
    try:
        return len(pdf)
    finally:
        pdf.close()


def _is_multipage(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def tiff_frame_count(path: Path) -> int:
    """Frames of a TIFF from its header (a fax or a scanner's batch is one multi-page TIFF); 1 if unreadable."""
    try:
        with Image.open(path) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # noqa: BLE001 - unreadable: reading it later yields the file's error
        return 1


def page_names(paths: list[Path]) -> dict[Path, list[str]]:
    """Each input -> the names of its pages (one for an image, one per page for a PDF), unique across inputs."""
    stems = Counter(p.stem for p in paths)
    common = Path(os.path.commonpath([str(p.resolve().parent) for p in paths])) if paths else Path(".")

    def base(p: Path) -> str:
        if stems[p.stem] == 1:
            return p.stem
        try:
            rel = p.resolve().relative_to(common)
        except ValueError:
            rel = Path(p.name)
        return "__".join(rel.with_suffix("").parts) + "_" + p.suffix.lstrip(".").lower()

    def pages(p: Path) -> int:
        return pdf_page_count(p) if _is_pdf(p) else tiff_frame_count(p) if _is_multipage(p) else 1

    names = {}
    for p in paths:
        n = pages(p)
        names[p] = [f"{base(p)}_p{i + 1:04d}" for i in range(n)] if (_is_pdf(p) and n) or n > 1 else [base(p)]
    taken = Counter(n for ns in names.values() for n in ns)
    for p, ns in names.items():  # an image named like a PDF's page: keep the page's name, suffix the image's
        if not _is_pdf(p) and taken[ns[0]] > 1:
            names[p] = [f"{ns[0]}_{p.suffix.lstrip('.').lower() or 'file'}"]
    counts = Counter(n for ns in names.values() for n in ns)
    clashes = sorted(n for n, c in counts.items() if c > 1)
    if clashes:
        raise ValueError(f"inputs give clashing output names {clashes}; rename or read them separately")
    return names


def iter_pages(path: Path, max_pixels: int | None = None, skip: set[int] = frozenset()
               ) -> Iterator[tuple[int | None, Image.Image | Exception | None]]:
    """(page index or None, image or the error for that page/file); None for pages in `skip` (by index, 0 for
    an image), which are neither decoded nor rendered."""
    if _is_multipage(path) and tiff_frame_count(path) > 1:
        yield from _tiff_pages(path, max_pixels, skip)
        return
    if not _is_pdf(path):
        if 0 in skip:
            yield None, None
            return
        try:
            yield None, load_image(path, max_pixels=max_pixels) if max_pixels else load_image(path)
        except (ImageError, OSError) as e:
            yield None, e
        return
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception as e:  # pypdfium2 raises PdfiumError for empty/broken files
        yield None, ValueError(f"{path}: cannot open PDF ({e})")
        return
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        if len(pdf) == 0:
            yield None, ValueError(f"{path}: the PDF has no pages")
        for i in range(len(pdf)):
            if i in skip:
                yield i, None
                continue
            try:
                # The pixel limit applies before rendering: a tiny PDF can declare a page of any size, and
                # rendering it first would allocate all of it.
                w, h = (round(side * PDF_DPI / 72) for side in pdf[i].get_size())
                if limit is not None and w * h > limit:
                    raise ValueError(f"{w}x{h} = {w * h} pixels at {PDF_DPI} dpi > limit {limit}")
                image = pdf[i].render(scale=PDF_DPI / 72).to_pil().convert("RGB")
                yield i, load_image(image, max_pixels=max_pixels) if max_pixels else load_image(image)
            except Exception as e:
                yield i, ValueError(f"{path}: page {i + 1} cannot be rendered ({e})")
    finally:
        pdf.close()


def _tiff_pages(path: Path, max_pixels: int | None, skip: set[int]
                ) -> Iterator[tuple[int | None, Image.Image | Exception | None]]:
    """Every frame of a multi-page TIFF, as pages 0, 1, ... (Pillow opens frame 0 only unless asked)."""
    from PIL import ImageSequence

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(path) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if i in skip:
                    yield i, None
                    continue
                try:
                    w, h = frame.size  # header only: the limit applies before the frame is decoded
                    if limit is not None and w * h > limit:
                        raise ValueError(f"{w}x{h} = {w * h} pixels > limit {limit}")
                    page = frame.copy()
                    yield i, load_image(page, max_pixels=max_pixels) if max_pixels else load_image(page)
                except Exception as e:  # noqa: BLE001 - this frame fails alone
                    yield i, ValueError(f"{path}: page {i + 1} cannot be decoded ({e})")
    except Exception as e:  # noqa: BLE001 - the file itself is unreadable
        yield None, ValueError(f"{path}: cannot read TIFF ({e})")
