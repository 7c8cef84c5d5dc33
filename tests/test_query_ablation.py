"""Decoder-side query ablations (eval/research/query_ablation.py) on a tiny model: each alteration feeds the decoder
exactly the outputs it names, `none` reads as the plain pipeline does, and the command writes its table."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image, ImageDraw

from eval.metrics.edit_distance import normalized_edit_distance
from eval.research.query_ablation import ablated, donor_outputs, permutation, query_ablation
from ocr2 import OCR2Config, OCR2Model
from ocr2.pipeline import OCRPipeline
from ocr2.processing.text import ByteTokenizer
from ocr2.processing.views import get_recipe


def test_permutations():
    assert permutation("swap_halves", 5).tolist() == [2, 3, 4, 0, 1]
    assert permutation("reverse", 4).tolist() == [3, 2, 1, 0]
    shuffled = permutation("shuffle", 16, seed=3)
    assert sorted(shuffled.tolist()) == list(range(16)) and shuffled.tolist() != list(range(16))
    assert torch.equal(shuffled, permutation("shuffle", 16, seed=3))
    assert not torch.equal(shuffled, permutation("shuffle", 16, seed=4))


def _model() -> OCR2Model:
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.crop_size, cfg.encoder.query_view_sizes = 256, 192, (192, 256)
    return OCR2Model(cfg).eval()


def _page(i: int, size=(256, 256)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle([20 * i, 10, 20 * i + 60, 90], fill="black")
    return image


@pytest.mark.parametrize("ablation", ["swap_halves", "reverse", "shuffle"])
def test_a_permutation_reorders_every_views_outputs_before_the_decoder(ablation):
    model = _model()
    views = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        plain = model.encode_views(views)
        with ablated(model, ablation, seed=1):
            got = model.encode_views(views)
        after = model.encode_views(views)
    assert torch.allclose(got, plain[:, permutation(ablation, 16, seed=1)], atol=1e-6)
    assert torch.equal(after, plain)  # the hook is gone after the block


def test_other_page_feeds_the_donors_outputs_global_view_and_crops():
    model = _model()
    recipe = get_recipe("multi_crop", model.config)
    page, donor = _page(0, (400, 200)), _page(3, (300, 300))  # the wide page has crops; the donor is redrawn
    with torch.no_grad():
        donors = donor_outputs(model, recipe, [page], [donor])
        assert set(donors) == {256, 192} and donors[192].shape[0] == recipe.num_crops(page.size) > 0
        views = recipe.views(page)
        with ablated(model, "other_page", donors=donors):
            emb = model.image_embeddings(views.global_view[None], views.crops, [views.num_crops])
        want = recipe.views(donor.resize(page.size))
        ref = model.image_embeddings(want.global_view[None], want.crops, [want.num_crops])
    assert torch.allclose(emb, ref, atol=1e-6)


class _EvalPage:
    def __init__(self, i: int):
        self.stem, self.image, self.markdown = f"p{i}", _page(i), f"page {i} text"


def test_none_reads_as_the_plain_pipeline_and_deltas_are_against_it():
    pipe = OCRPipeline(_model(), ByteTokenizer(), views="single:256", max_new_tokens=6, batch_size=2)
    pages = [_EvalPage(i) for i in range(3)]
    result = query_ablation(pipe, pages, ["reverse", "other_page"], progress=False)
    plain = [r.markdown for r in pipe.read_images([(p.stem, p.image) for p in pages], progress=False)]
    assert list(result["predictions"]["none"].values()) == plain
    s = result["summary"]
    assert list(s) == ["none", "reverse", "other_page"]
    assert s["none"]["delta_ned"] == 0.0 and s["none"]["changed"] == 0.0
    for a in ("reverse", "other_page"):
        neds = [normalized_edit_distance(result["predictions"][a][p.stem], p.markdown) for p in pages]
        assert s[a]["page_ned"] == pytest.approx(sum(neds) / 3)
        assert s[a]["delta_ned"] == pytest.approx(s[a]["page_ned"] - s["none"]["page_ned"])


def test_unknown_ablation_names_the_choices():
    with pytest.raises(ValueError, match="unknown ablation 'sideways'"):
        with ablated(_model(), "sideways"):
            pass


def test_the_command_writes_table_and_plot(tmp_path):
    from data_helpers import write_split
    from data_pipelines.writer import encode_image
    from eval.research.query_ablation import main
    from ocr2.data.schema import make_sample
    from ocr2.pipeline import save_with_tokenizer

    save_with_tokenizer(_model(), ByteTokenizer(), tmp_path / "model")
    rows = []
    for i in range(2):
        image = _page(i)
        row = make_sample(f"p{i}", image, f"page {i}", [], source="test", lang="en")
        row["image"] = encode_image(image)
        rows.append(row)
    write_split(tmp_path / "data", "validation", rows)
    out = tmp_path / "out"
    assert main(["--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"), "--views", "single:256",
                 "--max-new-tokens", "4", "--ablations", "shuffle", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "query_ablation.json").read_text())["summary"]
    assert list(summary) == ["none", "shuffle"]
    assert "| shuffle |" in (out / "query_ablation.md").read_text()
    assert (out / "query_ablation.png").stat().st_size > 10_000


def test_ocr2_report_shows_the_decoder_ablation_deltas(tmp_path):
    import json

    import yaml

    from eval.report import main as report_main

    run = tmp_path / "sweep" / "a"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "model": {"encoder": {"mask": "causal_flow"}}}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "eval" / "metrics.json").write_text(json.dumps({"summary": {"page_ned": 0.25}}))
    figures = {"none": 0.25, "reverse": 0.5, "shuffle": 0.75, "other_page": 1.0}
    (run / "eval" / "query_ablation.json").write_text(json.dumps({"summary": {
        a: {"page_ned": v, "delta_ned": v - 0.25, "changed": 1.0} for a, v in figures.items()}}))
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    header, _, row = (tmp_path / "out" / "report.md").read_text().splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert (cells["delta_reverse"], cells["delta_shuffle"], cells["delta_other_page"]) == ("0.2500", "0.5000", "0.7500")
