"""The reading-order score (eval/research/reading_order*.py) on synthetic attention patterns whose figures are known,
the grid mapping of page blocks, and the command end to end on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image, ImageDraw

from eval.research.reading_order import attended_tokens, kendall_tau, path_figures, view_figures
from eval.research.reading_order_pages import layout_type, reading_keys, view_transform
from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.views import get_recipe, page_views

SIDE = 4


def _one_hot(tokens: list[int], n_visual: int = SIDE * SIDE) -> torch.Tensor:
    """(n_q, n_visual) attention: query i all on token tokens[i]."""
    return torch.nn.functional.one_hot(torch.tensor(tokens), n_visual).float()


def _block(x0, y0, x1, y1, order):
    return {"category_type": "text_block", "poly": [x0, y0, x1, y0, x1, y1, x0, y1], "order": order, "text": "x"}


def _two_column_blocks() -> list[dict]:
    """A 256² page (= the single:256 view, 64 px cells, a 4x4 grid): two text columns of two tokens' width, one
    block per line; reading order: the left column's four lines, then the right column's."""
    left = [_block(0, 64 * r, 128, 64 * r + 64, r) for r in range(SIDE)]
    right = [_block(128, 64 * r, 256, 64 * r + 64, SIDE + r) for r in range(SIDE)]
    return left + right


COLUMN_BY_COLUMN = [r * SIDE + c for r in range(SIDE) for c in (0, 1)] + [r * SIDE + c for r in range(SIDE)
                                                                          for c in (2, 3)]


def test_kendall_tau_equals_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 5, (40,), generator=g), torch.randint(0, 7, (40,), generator=g)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x.numpy(), y.numpy()).statistic, abs=1e-12)


def test_kendall_tau_is_nan_without_untied_pairs():
    assert math.isnan(kendall_tau(torch.arange(5), torch.zeros(5)))


@pytest.mark.parametrize("path", ["argmax", "centroid"])
def test_a_raster_path_has_tau_raster_one(path):
    tokens = attended_tokens(_one_hot(list(range(16))), SIDE, path)
    fig = path_figures(tokens, SIDE)
    assert fig["tau_raster"] == pytest.approx(1.0)
    assert fig["monotone_raster"] == 1.0
    assert fig["jumps"] == SIDE - 1  # one line wrap per grid line
    assert fig["visited"] == 1.0


def test_a_reversed_path_has_tau_raster_minus_one():
    fig = path_figures(attended_tokens(_one_hot(list(range(15, -1, -1))), SIDE), SIDE)
    assert fig["tau_raster"] == pytest.approx(-1.0)
    assert fig["monotone_raster"] == 0.0


def test_column_by_column_on_a_two_column_page_has_tau_reading_one():
    stats = pytest.importorskip("scipy.stats")
    keys = reading_keys(_two_column_blocks(), get_recipe("single:256"), (256, 256), SIDE)
    fig = path_figures(torch.tensor(COLUMN_BY_COLUMN), SIDE, keys)
    assert fig["tau_reading"] == pytest.approx(1.0)
    assert fig["monotone_reading"] == 1.0
    assert fig["covered"] == 1.0
    want = stats.kendalltau(range(16), COLUMN_BY_COLUMN).statistic
    assert fig["tau_raster"] == pytest.approx(want, abs=1e-12) and fig["tau_raster"] < 0.8


def test_a_raster_path_on_a_two_column_page_is_below_one_in_reading_order():
    keys = reading_keys(_two_column_blocks(), get_recipe("single:256"), (256, 256), SIDE)
    fig = path_figures(torch.arange(16), SIDE, keys)
    assert fig["tau_raster"] == pytest.approx(1.0) and fig["tau_reading"] < 0.8


def test_centroid_places_a_query_on_the_token_nearest_to_its_weighted_mean():
    attn = torch.zeros(2, 16)
    attn[0, 0], attn[0, 3] = 0.25, 0.5  # (0, 0) and (0, 3), weights 1:2 -> column 2
    attn[1, 1], attn[1, 13] = 0.5, 0.5  # (0, 1) and (3, 1) -> row 1.5 -> 2 (half to even), column 1
    assert attended_tokens(attn, SIDE, "centroid").tolist() == [2, 2 * SIDE + 1]
    assert attended_tokens(attn, SIDE, "argmax").tolist() == [3, 1]


def test_tokens_off_every_block_are_left_out_of_tau_reading():
    blocks = [_block(0, 0, 256, 64, 0), _block(0, 128, 256, 192, 1)]  # grid lines 0 and 2 only
    keys = reading_keys(blocks, get_recipe("single:256"), (256, 256), SIDE)
    assert (keys >= 0).tolist() == [r in (0, 2) for r in range(SIDE) for _ in range(SIDE)]
    fig = path_figures(torch.arange(16), SIDE, keys)
    assert fig["covered"] == 0.5 and fig["tau_reading"] == pytest.approx(1.0)


def test_blocks_map_through_the_padded_global_view():
    """A wide page is contain-resized and grey-padded; a block's tokens are where its ink lands in the view."""
    page = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(page).rectangle([200, 0, 399, 99], fill="black")  # top-right quarter of the page
    recipe = get_recipe("single:256")
    keys = reading_keys([_block(200, 0, 400, 100, 0)], recipe, page.size, SIDE)
    view = page_views(page, recipe).global_view  # (3, 256, 256) in [-1, 1]
    dark = (view.mean(0) < -0.5).float()
    ink = torch.nn.functional.avg_pool2d(dark[None, None], 64).flatten() > 0
    assert (keys >= 0).tolist() == ink.tolist()
    sx, sy, ox, oy = view_transform(recipe, page.size)
    assert (sx, sy, ox, oy) == (0.64, 0.64, 0.0, 64.0)


def test_layout_type_counts_columns_side_by_side_and_prefers_the_source_attribute():
    blocks = [_block(0, 0, 256, 30, 0)] + _two_column_blocks()  # a heading across both columns
    assert layout_type(blocks) == "2-column"
    assert layout_type(blocks, {"layout": "double_column"}) == "double_column"
    assert layout_type([]) == "no-blocks"


def test_view_figures_has_every_layer_and_the_mean():
    attn = torch.stack([_one_hot(list(range(16))), _one_hot(list(range(15, -1, -1)))])
    fig = view_figures(attn)
    assert list(fig) == ["0", "1", "mean"]
    assert fig["0"]["argmax"]["tau_raster"] == pytest.approx(1.0)
    assert fig["1"]["argmax"]["tau_raster"] == pytest.approx(-1.0)


# ----------------------------------------------------------------------------------------- the command


def _tiny(mask: str = "causal_flow") -> OCR2Model:
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.encoder.query_view_sizes, cfg.encoder.mask = 256, (256,), mask
    return OCR2Model(cfg).eval()


class _Page:
    def __init__(self, i: int):
        self.stem, self.image = f"p{i}", Image.new("RGB", (256, 256), "white")
        self.gt_page = {"layout_dets": _two_column_blocks()}
        self.attributes = {}


def test_score_pages_aggregates_layers_and_layouts():
    from eval.research.reading_order_study import score_pages

    result = score_pages(_tiny(), [_Page(i) for i in range(3)], views="single:256", batch_size=2, progress=False)
    assert result["summary"]["pages"] == 3
    assert list(result["by_layer"]) == ["0", "1", "mean"]
    assert list(result["by_layout"]) == ["2-column"] and result["by_layout"]["2-column"]["pages"] == 3
    assert -1.0 <= result["summary"]["tau_raster"] <= 1.0
    record = result["pages"][0]
    assert len(record["queries"]["argmax"]) == 2 and len(record["queries"]["argmax"][0]) == 16
    assert len(record["queries_mean"]["argmax"]) == 16 and len(record["queries_mean"]["centroid"][0]) == 2
    # The summary is the mean over pages of the pages' own figures.
    mean = sum(r["figures"]["mean"]["argmax"]["tau_raster"] for r in result["pages"]) / 3
    assert result["summary"]["tau_raster"] == pytest.approx(mean)


def test_a_mask_without_queries_is_refused():
    from eval.research.reading_order_study import score_pages

    with pytest.raises(ValueError, match="no flow queries"):
        score_pages(_tiny("raster"), [_Page(0)], views="single:256", progress=False)


def test_the_command_writes_tables_plot_and_pages(tmp_path):
    from data_helpers import write_split
    from data_pipelines.writer import encode_image
    from eval.research.reading_order_study import main
    from ocr2.data.schema import make_sample

    _tiny().save_pretrained(tmp_path / "model")
    image = Image.new("RGB", (256, 256), "white")
    rows = []
    for i in range(3):
        row = make_sample(f"p{i}", image, "x", _two_column_blocks(), source="test", lang="en")
        row["image"] = encode_image(image)
        rows.append(row)
    write_split(tmp_path / "data", "validation", rows)
    out = tmp_path / "out"
    assert main(["--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"), "--views", "single:256",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "reading_order.json").read_text())["summary"]
    assert summary["pages"] == 3 and set(summary) >= {"tau_raster", "tau_reading"}
    assert len((out / "reading_order_pages.jsonl").read_text().splitlines()) == 3
    assert "| mean of layers |" in (out / "reading_order.md").read_text()
    assert (out / "reading_order.png").stat().st_size > 10_000


def test_ocr2_report_shows_the_reading_order_columns(tmp_path):
    import yaml

    from eval.report import main as report_main

    for name, mask, tau in (("a", "causal_flow", 0.25), ("b", "raster", None)):
        run = tmp_path / "sweep" / name
        (run / "eval").mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "model": {"encoder": {"mask": mask}}}))
        (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
        (run / "eval" / "metrics.json").write_text(json.dumps({"summary": {"page_ned": 0.5}}))
        if tau is not None:
            (run / "eval" / "reading_order.json").write_text(
                json.dumps({"summary": {"pages": 2, "tau_raster": tau, "tau_reading": -tau}}))
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "report.md").read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:4]}
    assert rows["mask=causal_flow"][header.index("tau_raster")] == "0.2500"
    assert rows["mask=causal_flow"][header.index("tau_reading")] == "-0.2500"
    assert rows["mask=raster"][header.index("tau_raster")] == "n/a"
