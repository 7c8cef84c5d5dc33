"""CDM and Overall, the optional component: what it needs is named with how to install it; without it metrics.json
and summary.md say plainly that CDM and Overall were not computed; with it (XeLaTeX, ImageMagick 7, Node.js, the
official checkout and its Python, given as OCR2_ODB / OCR2_ODB_PYTHON) CDM and Overall are computed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from omnidocbench_cases import cases
from PIL import Image

from eval.eval_summary import summary_markdown
from eval.harness import evaluate
from eval.metrics import evaluate_page, overall_score
from eval.metrics.cdm_tools import cdm_requirements, cdm_status
from eval.pages import EvalPage
from ocr2.pipeline import PageResult
from ocr2.processing.views import get_recipe

ODB, ODB_PYTHON = os.environ.get("OCR2_ODB"), os.environ.get("OCR2_ODB_PYTHON")


class StandIn:
    def __init__(self, answers):
        self.recipe, self.batch_size, self.answers = get_recipe("single"), 4, answers

    def read_images(self, images, progress=True):
        return [PageResult(n, name=n, markdown=self.answers[n]) for n, _ in images]


def _paper_pages():
    built = {k: v for k, v in cases().items() if k in ("gt_markdown", "bracket_equation_with_tag")}
    pages = [EvalPage(k, Image.new("RGB", (64, 64), "white"), None, gt) for k, (gt, _) in built.items()]
    return pages, {k: md for k, (_, md) in built.items()}


def test_every_missing_tool_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on the PATH
    status = cdm_status()
    assert status["available"] is False
    names = [m["name"] for m in status["missing"]]
    assert names[:4] == ["XeLaTeX with xeCJK", "font Source Han Sans SC", "ImageMagick (`magick`) and Ghostscript",
                         "Node.js"]
    installs = " ".join(m["install"] for m in status["missing"])
    assert "apt-get install texlive-xetex" in installs and "apt-get install nodejs" in installs
    assert "apt-get install imagemagick ghostscript" in installs and "cdm.odb=" in installs
    assert status["reason"].startswith("CDM not computed: missing XeLaTeX") and "Overall" in status["reason"]


def test_a_stand_in_convert_or_magick_is_not_taken_for_imagemagick(monkeypatch, tmp_path):
    fake = tmp_path / "magick"
    fake.write_text("#!/bin/sh\necho 'not ImageMagick'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    magick = next(r for r in cdm_requirements() if r.name.startswith("ImageMagick"))
    assert magick.found is None


def test_formula_pairs_carry_the_latex_cdm_renders():
    gt, md = cases()["bracket_equation_with_tag"]
    (pair,) = evaluate_page(md, gt)["formula_latex"]
    assert pair[0].startswith("$$") and "\\mathcal{L}" in pair[0] and pair[1].startswith("\\[")


def test_without_the_tools_metrics_and_summary_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    pages, answers = _paper_pages()
    report = evaluate(StandIn(answers), pages, tmp_path / "out", progress=False)
    assert report["cdm"]["available"] is False and report["cdm"]["pairs"] == 2
    assert report["summary"]["formula_cdm"] is None and report["summary"]["overall"] is None
    assert report["omnidocbench"]["overall_reason"].startswith("CDM not computed: missing")
    text = summary_markdown(report)
    assert "Overall not reported. CDM not computed: missing XeLaTeX" in text


def test_overall_is_the_leaderboard_formula():
    assert overall_score(0.1, 0.8, 0.7) == pytest.approx((90 + 80 + 70) / 3)
    assert overall_score(0.1, 0.8, None) is None


_STATUS = cdm_status(ODB, ODB_PYTHON)


@pytest.mark.skipif(not _STATUS["available"], reason=_STATUS["reason"])
def test_with_the_tools_cdm_and_overall_are_computed(tmp_path):
    pages, answers = _paper_pages()
    report = evaluate(StandIn(answers), pages, tmp_path / "out", progress=False,
                      cdm={"odb": ODB, "python": ODB_PYTHON, "workers": 2})
    summary = report["summary"]
    assert 0.9 <= summary["formula_cdm"] <= 1.0  # the same formula, written twice
    assert summary["overall"] == pytest.approx(overall_score(summary["text_edit"], summary["table_teds"],
                                                             summary["formula_cdm"]))
    assert Path(tmp_path / "out" / "cdm" / "scores.jsonl").is_file()


def test_cdm_scores_are_kept_per_chunk_and_a_rerun_resumes(monkeypatch, tmp_path):
    import eval.metrics.cdm as cdm

    calls = []

    def fake_chunk(chunk, odb, python, workdir, workers):
        calls.append(len(chunk))
        return [1.0 if gt == pred else 0.0 for gt, pred in chunk]

    monkeypatch.setattr(cdm, "cdm_status", lambda *a: {"available": True, "reason": ""})
    monkeypatch.setattr(cdm, "_chunk_scores", fake_chunk)
    monkeypatch.setattr(cdm, "CHUNK", 2)
    pairs = [("a", "a"), ("b", "c"), ("d", "d"), ("e", "e"), ("f", "g")]
    first = cdm.formula_cdm(pairs, "odb", "python", tmp_path, progress=False)
    assert first["CDM"] == pytest.approx(3 / 5) and calls == [2, 2, 1]
    again = cdm.formula_cdm(pairs, "odb", "python", tmp_path, progress=False)
    assert again == first and calls == [2, 2, 1]  # nothing scored twice
