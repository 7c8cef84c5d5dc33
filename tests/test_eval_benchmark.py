"""The whole-benchmark evaluation path of `ocr2-eval`, without a model: the official OmniDocBench layout read in
place, pages streamed and batched by view count, resume, the default split, the leaderboard's breakdowns per
page type and attribute (with the repetition rate), progress with rate and ETA. A stand-in pipeline answers each
page with a known markdown, so every figure can be checked against the scorer run directly
(tests/test_eval_command.py runs the real command with a tiny model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from omnidocbench_layout import SIZES, write_official_layout

from eval.batching import view_batches
from eval.harness import evaluate
from eval.metrics import evaluate_pages
from eval.metrics.omnidocbench_groups import attribute_labels, group_figures, split_groups
from eval.official_layout import find_official_json
from eval.pages import default_split
from eval.progress import Progress
from eval.sources import open_source
from ocr2.pipeline import PageResult
from ocr2.processing.views import get_recipe

N = 6


class StandIn:
    """What evaluate() needs of an OCRPipeline: a view recipe, a batch size and read_images."""

    def __init__(self, answers: dict[str, str], batch_size: int = 2, loops: frozenset = frozenset()):
        self.recipe, self.batch_size, self.answers, self.loops = get_recipe("multi_crop"), batch_size, answers, loops
        self.batches: list[list[tuple[str, tuple[int, int]]]] = []

    def read_images(self, images, progress=True):
        self.batches.append([(name, img.size) for name, img in images])
        return [PageResult(name, name=name, markdown=self.answers[name], hit_token_limit=name in self.loops)
                for name, _ in images]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("OmniDocBench")
    return folder, write_official_layout(folder, N)


def _run(release, out, **kw):
    folder, answers = release
    pipe = StandIn(answers, **kw)
    source = open_source(folder)
    return pipe, evaluate(pipe, source.pages, out, progress=False, total=source.total)


def test_the_release_layout_is_recognised_and_streamed(release):
    folder, answers = release
    assert find_official_json(folder) == folder / "OmniDocBench.json"
    assert find_official_json(folder / "OmniDocBench.json") == folder / "OmniDocBench.json"
    source = open_source(folder)
    assert (source.layout, source.split, source.total) == ("omnidocbench", None, N)
    first = next(source.pages)
    assert first.markdown is None and first.size == SIZES[0] and first.image.size == SIZES[0]


def test_figures_equal_the_scorer_run_directly(release, tmp_path):
    folder, answers = release
    _, report = _run(release, tmp_path / "out")
    direct = evaluate_pages(answers, folder / "OmniDocBench.json")
    for key in ("text_edit", "reading_order_edit", "table_teds", "table_edit", "formula_edit"):
        assert report["summary"][key] == pytest.approx(direct["summary"][key], abs=1e-12), key
    assert report["summary"]["pages"] == N and report["summary"]["page_ned"] is None  # no GT markdown here
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["summary"] == pytest.approx(report["summary"])
    assert sorted(p.stem for p in (tmp_path / "out" / "predictions").glob("*.md")) == sorted(answers)


def test_batches_hold_pages_of_one_view_count(release, tmp_path):
    pipe, _ = _run(release, tmp_path / "out", batch_size=2)
    crops = [{pipe.recipe.num_crops(size) for _, size in batch} for batch in pipe.batches]
    assert all(len(c) == 1 for c in crops) and len(crops) == 3  # sizes cycle over 3 crop counts, 2 pages each
    assert sorted(name for b in pipe.batches for name, _ in b) == sorted(release[1])


def test_a_rerun_resumes_and_reads_only_what_is_missing(release, tmp_path):
    out = tmp_path / "out"
    _, first = _run(release, out)
    pipe, again = _run(release, out)
    assert pipe.batches == [] and again["run"] == {"pages_read": 0, "pages_resumed": N, "errors": {}}
    assert again["summary"] == pytest.approx(first["summary"])
    victim = sorted(release[1])[0]
    (out / "predictions" / f"{victim}.md").unlink()
    pipe, third = _run(release, out)
    assert [n for b in pipe.batches for n, _ in b] == [victim] and third["run"]["pages_resumed"] == N - 1
    assert third["summary"] == pytest.approx(first["summary"])


def test_pages_are_written_while_later_pages_are_still_coming(release, tmp_path):
    folder, answers = release
    out, seen_on_disk = tmp_path / "out", []
    source = open_source(folder)

    def stream():
        for k, page in enumerate(source.pages):
            seen_on_disk.append(len(list((out / "predictions").glob("*.md"))) if k else 0)
            yield page

    evaluate(StandIn(answers, batch_size=1), stream(), out, progress=False)
    assert seen_on_disk[-1] >= 1  # the first batch was on disk before the last page was even decoded


def test_per_page_type_and_attribute_with_the_repetition_rate(release, tmp_path):
    folder, answers = release
    loop = list(answers)[1]  # page 1 of the layout: a page of type "book"
    _, report = _run(release, tmp_path / "out", loops=frozenset({loop}))
    types, attrs = report["by_page_type"], report["by_attribute"]
    assert sorted(types) == ["book", "exam_paper", "research_report"]
    assert all(row["pages"] == 2 for row in types.values())
    assert types["book"]["repetition_rate"] == 0.5 and types["exam_paper"]["repetition_rate"] == 0.0
    assert attrs["layout: single_column"]["pages"] == 3 and attrs["fuzzy_scan"]["pages"] == 3
    assert report["summary"]["repetition_rate"] == pytest.approx(1 / N)
    direct = evaluate_pages({s: answers[s] for s in answers}, folder / "OmniDocBench.json")["pages"]
    book = [s for s, p in report["pages"].items() if "data_source: book" in p["attributes"]]
    assert types["book"]["text_edit"] == pytest.approx(sum(direct[s]["text_edit"] for s in book) / 2)


def test_attribute_labels_follow_the_benchmark():
    labels = attribute_labels({"data_source": "book", "language": "english", "layout": "double_column",
                               "special_issue": ["fuzzy_scan", "table_with_watermark"]})
    assert labels == ["data_source: book", "language: english", "layout: double_column", "fuzzy_scan"]
    groups = group_figures({"a": {"text_edit": 0.2}, "b": {"text_edit": 0.4}, "c": {"text_edit": None}},
                           {"a": ["data_source: book"], "b": ["data_source: book"], "c": ["language: english"]},
                           {"a": True, "b": False, "c": False})
    types, others = split_groups(groups)
    assert types["book"]["text_edit"] == pytest.approx(0.3) and types["book"]["repetition_rate"] == 0.5
    assert others["language: english"]["text_edit"] is None


def test_view_batches_emit_every_page_once_within_the_window():
    pages = [(k, k % 3) for k in range(20)]
    batches = list(view_batches(pages, lambda p: p[1], batch_size=4, window=6))
    assert sorted(p for b in batches for p in b) == pages
    assert all(len({p[1] for p in b}) == 1 and len(b) <= 4 for b in batches)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(view_batches(pages, lambda p: 0, batch_size=0))


@pytest.mark.parametrize("splits,expected", [({"test": 5}, "test"), ({"train": 9, "validation": 2}, "validation"),
                                             ({"train": 3}, "train")])
def test_the_default_split_is_the_one_the_builder_wrote(tmp_path, splits, expected):
    (tmp_path / "ocr2_dataset.json").write_text(json.dumps({"builder": "x", "splits": splits}))
    assert default_split(tmp_path) == expected


def test_an_ambiguous_dataset_asks_for_a_split(tmp_path):
    (tmp_path / "ocr2_dataset.json").write_text(json.dumps({"splits": {"a": 1, "b": 1}}))
    with pytest.raises(ValueError, match=r"cannot tell which split.*\['a', 'b'\].*data.split"):
        default_split(tmp_path)


def test_a_missing_image_names_the_page_and_the_file(tmp_path):
    write_official_layout(tmp_path, 2)
    victim = sorted((tmp_path / "images").iterdir())[1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"page 1 .*no image .*{victim.name}"):
        list(open_source(tmp_path).pages)


def test_progress_shows_rate_and_eta():
    stream = io.StringIO()
    bar = Progress(total=100, stream=stream)
    bar.update(resumed=40)
    bar.start -= 10.0  # 10 s ago
    bar.update(read=20)
    line = stream.getvalue().strip().splitlines()[-1]
    assert line.startswith("ocr2-eval: 60/100 pages, 40 resumed, ") and "pages/s" in line and "ETA 0:00:" in line


def test_a_predictions_folder_is_scored_without_a_model(release, tmp_path):
    from eval.score_predictions import score_folder

    folder, answers = release
    for stem, md in list(answers.items())[:-1]:  # one page left without a prediction
        (tmp_path / f"{stem}.md").write_text(md, encoding="utf-8")
    report = score_folder(folder / "OmniDocBench.json", tmp_path, progress=False)
    direct = evaluate_pages({s: m for s, m in list(answers.items())[:-1]}, folder / "OmniDocBench.json")
    assert report["summary"]["text_edit"] == pytest.approx(direct["summary"]["text_edit"], abs=1e-12)
    assert report["missing_predictions"] == [list(answers)[-1]] and report["cdm"]["available"] in (True, False)
    assert sorted(report["by_page_type"]) == ["book", "exam_paper", "research_report"]


def test_a_resumed_prediction_is_the_text_that_was_read_byte_for_byte(release, tmp_path):
    """A generated carriage return must come back as one: read in text mode it became a newline, the resumed page
    split into other blocks and the rerun's reading-order edit differed from the first run's (seen in CI)."""
    folder, answers = release
    odd = {stem: md.replace("\n\n", "\r\n\r", 1) + "\r" for stem, md in answers.items()}
    out = tmp_path / "out"
    first = evaluate(StandIn(odd), open_source(folder).pages, out, progress=False)
    pipe = StandIn(odd)
    again = evaluate(pipe, open_source(folder).pages, out, progress=False)
    assert pipe.batches == [] and again["run"]["pages_resumed"] == N
    assert again["summary"] == first["summary"]


def test_a_page_record_holding_a_unicode_line_separator_is_resumed_whole(tmp_path):
    from eval.harness import _Store

    _Store(tmp_path).save("p\u2028q", "text", {"stem": "p\u2028q", "generated_tokens": 3, "error": None})
    again = _Store(tmp_path)
    assert again.records == {"p\u2028q": {"stem": "p\u2028q", "generated_tokens": 3, "error": None}}
    assert again.done("p\u2028q") == "text"


def test_predictions_of_another_protocol_are_kept_apart_not_resumed(release, tmp_path):
    folder, answers = release
    out = tmp_path / "out"
    evaluate(StandIn(answers), open_source(folder).pages, out, progress=False, info={"prompt": "a"})
    pipe = StandIn(answers)
    again = evaluate(pipe, open_source(folder).pages, out, progress=False, info={"prompt": "b"})
    assert again["run"]["pages_read"] == N and again["run"]["pages_resumed"] == 0
    assert len(list((out / "superseded" / "1" / "predictions").glob("*.md"))) == N
    same = evaluate(StandIn(answers), open_source(folder).pages, out, progress=False, info={"prompt": "b"})
    assert same["run"]["pages_resumed"] == N
