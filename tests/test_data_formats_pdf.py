"""`ocr2-data pdf`: PDFs with per-page markdown (a folder of page_NNN.md, or one .md split by `<!-- page -->`)
into one row per page, rendered as ocr2-infer renders PDFs; mismatched documents skipped whole, named."""

import logging

import pyarrow.parquet as pq
import pytest

from data_helpers import page_image
from data_pipelines.cli import main
from data_pipelines.pdf import build_pdf
from ocr2.documents import iter_pages


def _pdf(path, pages: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [page_image(i, (72, 96)) for i in range(pages)]
    images[0].save(path, "PDF", resolution=72, save_all=True, append_images=images[1:])
    return path


def _rows(out, split="train") -> dict[str, dict]:
    return {r["id"]: r for f in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(f).to_pylist()}


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    _pdf(root / "report.pdf", 3)
    for n in (1, 2, 3):
        (root / "report").mkdir(exist_ok=True)
        (root / "report" / f"page_{n:03d}.md").write_text(f"# Report page {n}")
    _pdf(root / "sub" / "letter.pdf", 2)
    (root / "sub" / "letter.md").write_text("Dear reader,\n\n<!-- page -->\nYours.\n")
    return root


def test_both_markdown_forms_give_one_row_per_page(docs, tmp_path):
    out = tmp_path / "out"
    info = build_pdf(out, docs, split="train")
    rows = _rows(out)
    assert info["splits"] == {"train": 5} and info["skipped"] == {}
    assert {k: r["markdown"] for k, r in rows.items()} == {
        "report_p0001": "# Report page 1", "report_p0002": "# Report page 2", "report_p0003": "# Report page 3",
        "sub/letter_p0001": "Dear reader,", "sub/letter_p0002": "Yours."}
    _, page = next(iter_pages(docs / "report.pdf"))  # the pixels ocr2-infer reads
    assert (rows["report_p0001"]["width"], rows["report_p0001"]["height"]) == page.size == (144, 192)


def test_pages_of_one_pdf_stay_in_one_split(docs, tmp_path):
    out = tmp_path / "out"
    build_pdf(out, docs, validation_fraction=0.5)
    for doc in ("report", "sub/letter"):
        where = {s for s in ("train", "validation") for k in _rows(out, s) if k.startswith(doc + "_p")}
        assert len(where) == 1, doc


def test_mismatched_documents_are_skipped_whole_and_missing_pages_alone(docs, tmp_path, caplog):
    _pdf(docs / "short.pdf", 2)
    (docs / "short.md").write_text("one\n<!-- page -->\ntwo\n<!-- page -->\nthree")
    _pdf(docs / "holes.pdf", 3)
    (docs / "holes").mkdir()
    (docs / "holes" / "page_2.md").write_text("only the second")
    _pdf(docs / "bare.pdf", 1)
    with caplog.at_level(logging.WARNING, logger="ocr2.data"):
        info = build_pdf(tmp_path / "out", docs, split="train")
    assert info["splits"] == {"train": 6}
    assert info["skipped"] == {"bad_record": 1, "no_markdown": 3}
    assert "short.md has 3 page(s) (2 `<!-- page -->` line(s)) but the PDF has 2" in caplog.text
    assert f"{docs / 'holes.pdf'} page 3" in caplog.text and "holes_p0002" in _rows(tmp_path / "out")
    with pytest.raises(ValueError, match=r"bare.pdf: no markdown: expected .*bare/page_001.md ... or .*bare.md"):
        build_pdf(tmp_path / "out2", docs, strict=True)


def test_a_custom_separator(tmp_path):
    _pdf(tmp_path / "d" / "a.pdf", 2)
    (tmp_path / "d" / "a.md").write_text("first\n===PAGE===\nsecond")
    assert main(["pdf", str(tmp_path / "d"), str(tmp_path / "out"), "--split", "train",
                 "--page-separator", "===PAGE==="]) == 0
    assert [r["markdown"] for r in _rows(tmp_path / "out").values()] == ["first", "second"]


def test_help_shows_both_conventions(capsys):
    with pytest.raises(SystemExit):
        main(["pdf", "--help"])
    text = capsys.readouterr().out
    assert "docs/report/page_001.md" in text and "<!-- page -->" in text and "--page-separator" in text
