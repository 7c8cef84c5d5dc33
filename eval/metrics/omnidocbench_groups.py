"""OmniDocBench figures per page type and per page attribute, as the benchmark's leaderboard breaks them down.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `metrics/show_result.py::get_page_split`. Each page
carries `page_info.page_attribute` (`data_source`: the page type - book, PPT2PDF, research_report, exam_paper,
...; `language`; `layout`; `special_issue`: a list such as fuzzy_scan, watermark, colorful_backgroud). A page
belongs to the groups `"<key>: <value>"` of its scalar attributes and to one group per special issue (named by
the issue alone; issues naming tables are left out, as the benchmark does). A group's figure is the mean over
its pages of the page figure (edit ratios: sum(edit) / sum(upper_len) within the page; TEDS: the page's mean
over its tables) - the benchmark's page-level logic. The repetition rate of a group is the share of its pages
whose prediction loops or hit the token limit.
"""

from __future__ import annotations

from statistics import fmean

PAGE_TYPE_KEY = "data_source"
FIGURES = ("text_edit", "formula_edit", "reading_order_edit", "table_teds", "table_teds_s", "table_edit")


def attribute_labels(page_attribute: dict | None) -> list[str]:
    """The group names of one page, e.g. ["data_source: book", "language: english", "fuzzy_scan"]."""
    labels = []
    for key, value in (page_attribute or {}).items():
        if isinstance(value, list):
            labels += [str(v) for v in value if "table" not in str(v)]
        elif value is not None:
            labels.append(f"{key}: {value}")
    return labels


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def group_figures(pages: dict[str, dict], labels: dict[str, list[str]],
                  repetitive: dict[str, bool] | None = None) -> dict[str, dict]:
    """label -> {pages, each of FIGURES (None when no page of the group has one), repetition_rate}.
    `pages`: per-page figures keyed by stem; `labels`: each stem's attribute_labels; `repetitive`: stem -> bool."""
    members: dict[str, list[str]] = {}
    for stem in pages:
        for label in labels.get(stem, []):
            members.setdefault(label, []).append(stem)
    out = {}
    for label in sorted(members):
        stems = members[label]
        row = {"pages": len(stems)}
        row.update({f: _mean(pages[s].get(f) for s in stems) for f in FIGURES})
        if repetitive is not None:
            flags = [repetitive[s] for s in stems if s in repetitive]
            row["repetition_rate"] = sum(flags) / len(flags) if flags else None
        out[label] = row
    return out


def split_groups(groups: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(page types keyed by the data_source value, every other attribute group keyed by its label)."""
    prefix = f"{PAGE_TYPE_KEY}: "
    types = {k[len(prefix):]: v for k, v in groups.items() if k.startswith(prefix)}
    others = {k: v for k, v in groups.items() if not k.startswith(prefix)}
    return types, others
