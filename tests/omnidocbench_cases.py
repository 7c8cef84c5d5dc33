"""Adversarial OmniDocBench cases, built in code: small GT pages in the benchmark's JSON schema and predictions
that stress the protocol (empty, shuffled, duplicated paragraphs, pipe vs HTML tables, `\\begin{equation}`,
spaced-out CJK in cells, long underscore blanks, ...). tests/test_omnidocbench_adversarial.py pins the official
evaluator's figures for them; to measure those again (needs the official checkout, see
docs/omnidocbench_agreement.md):

    python tests/omnidocbench_cases.py /tmp/cases
    python -m eval.metrics.agreement /tmp/cases/gt.json /tmp/cases/pred --odb ODB --official-python ODB_PYTHON \
        --pages --official-json /tmp/cases/official.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _block(category: str, order, anno_id: int, **content) -> dict:
    return {"category_type": category, "poly": [0, 0, 10, 0, 10, 10, 0, 10], "ignore": False, "order": order,
            "anno_id": anno_id, **content, "attribute": {}}


def _page(name: str, blocks: list[dict], language: str = "english", relations=()) -> dict:
    return {"layout_dets": blocks, "extra": {"relation": list(relations)},
            "page_info": {"image_path": f"{name}.jpg", "page_no": 0, "height": 1000, "width": 800,
                          "page_attribute": {"data_source": "research_report", "language": language,
                                             "layout": "single_column"}}}


TABLE_HTML = ("<table><thead><tr><th>Model</th><th>Params</th><th>Score</th></tr></thead><tbody>"
              "<tr><td>Alpha</td><td>1.2B</td><td>71.5</td></tr><tr><td>Beta</td><td>3B</td><td>80.1</td></tr>"
              "</tbody></table>")
PAPER_PARAGRAPHS = [
    "Document parsing turns page images into structured text that keeps the reading order of the page.",
    "We compare two models on a held-out set and report the edit distance of every block.",
    "The loss of the second stage is the cross entropy over the answer tokens only.",
]


def paper_page(name: str) -> dict:
    """English page: title, three paragraphs (the first cut in two across columns), a display formula, an
    ignored header and page number, a captioned table."""
    first = PAPER_PARAGRAPHS[0]
    cut = first.index("structured")
    blocks = [
        _block("header", None, 0, text="Preprint, under review"),
        _block("title", 1, 1, text="1 Introduction"),
        _block("text_block", 2, 2, text=first[:cut]),
        _block("text_block", 3, 3, text=first[cut:]),
        _block("text_block", 4, 4, text=PAPER_PARAGRAPHS[1]),
        _block("equation_isolated", 5, 5, latex="$$\n\\mathcal{L} = -\\sum_{t} \\log p(y_t \\mid y_{<t}, x)\n$$"),
        _block("text_block", 6, 6, text=PAPER_PARAGRAPHS[2]),
        _block("table_caption", 7, 7, text="Table 1: Results"),
        _block("table", 8, 8, html=TABLE_HTML, latex=""),
        _block("page_number", None, 9, text="3"),
    ]
    rel = [{"source_anno_id": 2, "target_anno_id": 3, "relation_type": "truncated"}]
    return _page(name, blocks, relations=rel)


PAPER_MD = [
    "# 1 Introduction",
    PAPER_PARAGRAPHS[0],
    PAPER_PARAGRAPHS[1],
    "$$\n\\mathcal{L} = -\\sum_{t} \\log p(y_t \\mid y_{<t}, x)\n$$",
    PAPER_PARAGRAPHS[2],
    "Table 1: Results",
    TABLE_HTML,
]
PIPE_TABLE = "| Model | Params | Score |\n|---|---|---|\n| Alpha | 1.2B | 71.5 |\n| Beta | 3B | 80.1 |"
STYLED_TABLE = ('<table border="1" style="width:100%"><colgroup><col width="30%"></colgroup><tr><th align="left">'
                "Model</th><th>Params</th><th><b>Score</b></th></tr><tr><td>Alpha</td><td>1.2B</td><td>71.5</td></tr>"
                '<tr><td class="x">Beta</td><td>3 B</td><td>80.1<sup>*</sup></td></tr></table>')
LATEX_TABLE = ("\\begin{tabular}{lll}\nModel & Params & Score \\\\\nAlpha & 1.2B & 71.5 \\\\\n"
               "Beta & 3B & 80.1 \\\\\n\\end{tabular}")

CJK_TABLE = ("<table><tr><td>项目</td><td>2022年</td><td>2023年</td></tr><tr><td>营业收入</td><td>1,024</td>"
             "<td>1,310</td></tr><tr><td>净利润（亿元）</td><td>86.5</td><td>97.2</td></tr></table>")
CJK_LATEX = ("\\begin{tabular}{|c|c|c|}\n\\hline 项目 & 2022年 & 2023年 \\\\\n"
             "\\hline 营业收入 & 1,024 & 1,310 \\\\\n"
             "\\hline 净利润（亿元） & 86.5 & 97.2 \\\\\n\\hline\n\\end{tabular}")
CJK_PARAGRAPHS = ["公司全年实现营业收入一千三百一十亿元，同比增长百分之二十八。",
                  "净利润保持稳定增长，现金流状况良好。"]


def cjk_page(name: str) -> dict:
    blocks = [
        _block("title", 1, 0, text="一、经营情况"),
        _block("text_block", 2, 1, text=CJK_PARAGRAPHS[0]),
        _block("table", 3, 2, html=CJK_TABLE, latex=CJK_LATEX),
        _block("text_block", 4, 3, text=CJK_PARAGRAPHS[1]),
    ]
    return _page(name, blocks, language="simplified_chinese")


def _spaced(text: str) -> str:
    return " ".join(text)


FORM_LINES = ["姓名：____ 班级：____ 学号：____", "1. The capital of France is ____ and it lies on the ____.",
              "2. 填空：水在 ____ 摄氏度时沸腾。"]


def form_page(name: str) -> dict:
    blocks = [_block("title", 1, 0, text="期末测试卷")]
    blocks += [_block("text_block", k + 2, k + 1, text=t) for k, t in enumerate(FORM_LINES)]
    return _page(name, blocks, language="en_ch_mixed")


def circled_page(name: str) -> dict:
    blocks = [_block("text_block", 1, 0, text="3. $ \\textcircled{1} $辽阔无垠 $ \\textcircled{2} $膘肥体壮"),
              _block("text_block", 2, 1, text="4. $ \\textcircled{1}\\textcircled{2}\\textcircled{5} $"),
              _block("text_block", 3, 2, text="5. 胡夫金字塔的地理位置和塔高的设计十分巧妙。")]
    return _page(name, blocks, language="simplified_chinese")


def _md(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs) + "\n"


def cases() -> dict[str, tuple[dict, str]]:
    """name -> (GT page, predicted markdown); the page's image is `<name>.jpg`."""
    shuffled = [PAPER_MD[k] for k in (4, 2, 6, 0, 3, 5, 1)]
    duplicated = [p for p in PAPER_MD for _ in (0, 1)]
    equation = "\\begin{equation}\n\\mathcal{L} = -\\sum_{t} \\log p(y_t \\mid y_{<t}, x)\n\\end{equation}"
    out = {
        "empty": (paper_page, ""),
        "gt_markdown": (paper_page, _md(PAPER_MD)),
        "shuffled": (paper_page, _md(shuffled)),
        "duplicated": (paper_page, _md(duplicated)),
        "pipe_table": (paper_page, _md(PAPER_MD[:-1] + [PIPE_TABLE])),
        "styled_html_table": (paper_page, _md(PAPER_MD[:-1] + [STYLED_TABLE])),
        "latex_table": (paper_page, _md(PAPER_MD[:-1] + [LATEX_TABLE])),
        "no_table": (paper_page, _md(PAPER_MD[:-1])),
        "begin_equation_in_dollars": (paper_page, _md(PAPER_MD[:3] + [f"$$\n{equation}\n$$"] + PAPER_MD[4:])),
        "begin_equation_bare": (paper_page, _md(PAPER_MD[:3] + [equation] + PAPER_MD[4:])),
        "bracket_equation_with_tag": (paper_page, _md(
            PAPER_MD[:3] + ["\\[\\mathcal{L}=-\\sum_t\\log p(y_t\\mid y_{<t},x) \\tag{1}\\]"] + PAPER_MD[4:])),
        "headers_and_inline_math": (paper_page, _md(
            ["Preprint, under review"] + PAPER_MD[:2] + ["We compare \\(2\\) models on a held-out set and report "
                                                         "the edit distance $d_i$ of every block."]
            + PAPER_MD[3:] + ["3"])),
        "single_newlines": (paper_page, "\n".join(p.replace("\n", " ") for p in PAPER_MD) + "\n"),
        "fenced": (paper_page, "```markdown\n" + _md(PAPER_MD) + "```\n"),
        "cjk_exact": (cjk_page, _md(["# 一、经营情况", CJK_PARAGRAPHS[0], CJK_TABLE, CJK_PARAGRAPHS[1]])),
        "cjk_spaced_cells": (cjk_page, _md([
            "# 一、经营情况", _spaced(CJK_PARAGRAPHS[0]),
            CJK_TABLE.replace("营业收入", _spaced("营业收入")).replace("净利润（亿元）", _spaced("净利润（亿元）"))
                     .replace("项目", "项 目"),
            _spaced(CJK_PARAGRAPHS[1])])),
        "cjk_pipe_spaced": (cjk_page, _md([
            "# 一、经营情况", CJK_PARAGRAPHS[0],
            "| 项 目 | 2022年 | 2023年 |\n| --- | --- | --- |\n| 营 业 收 入 | 1,024 | 1,310 |\n"
            "| 净 利 润 （ 亿 元 ） | 86.5 | 97.2 |", CJK_PARAGRAPHS[1]])),
        "cjk_latex_table": (cjk_page, _md(["# 一、经营情况", CJK_PARAGRAPHS[0], CJK_LATEX,
                                            CJK_PARAGRAPHS[1]])),
        "punctuation_paragraph": (paper_page, _md(PAPER_MD[:3] + ["* * * …… * * *"] + PAPER_MD[3:])),
        "underscore_blanks": (form_page, _md(
            ["# 期末测试卷"] + [t.replace("____", "_" * 24) for t in FORM_LINES])),
        "underscore_blanks_spaces": (form_page, _md(
            ["期末测试卷"] + [t.replace("____", " " * 12 + "_" * 6 + " " * 9) for t in FORM_LINES])),
        "spaced_textcircled": (circled_page, _md([
            _spaced("3. $ \\textcircled{1} $辽阔无垠 $ \\textcircled{2} $膘肥体壮"),
            _spaced("4. $ \\textcircled{1}\\textcircled{2}\\textcircled{5} $"),
            _spaced("5. 胡夫金字塔的地理位置和塔高的设计十分巧妙。")])),
    }
    return {name: (build(name), md) for name, (build, md) in out.items()}


def write_cases(folder: str | Path) -> Path:
    """gt.json and pred/<name>.md under `folder` (the layout the official evaluator and ours read)."""
    folder = Path(folder)
    (folder / "pred").mkdir(parents=True, exist_ok=True)
    built = cases()
    (folder / "gt.json").write_text(json.dumps([gt for gt, _ in built.values()], ensure_ascii=False, indent=1),
                                    encoding="utf-8")
    for name, (_, md) in built.items():
        (folder / "pred" / f"{name}.md").write_text(md, encoding="utf-8")
    return folder / "gt.json"


if __name__ == "__main__":
    print(write_cases(sys.argv[1] if len(sys.argv) > 1 else "omnidocbench_cases"))
