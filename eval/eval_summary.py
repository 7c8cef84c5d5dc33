"""summary.md of `ocr2-eval`: the headline figures, the leaderboard's breakdowns (per page type, per page
attribute, with the repetition rate), what was not computed and why, and the protocol."""

from __future__ import annotations

import json

from eval.report_table import render_markdown_table

SUMMARY_COLUMNS = ["pages", "page_ned", "text_edit", "reading_order_edit", "table_teds", "table_teds_s",
                   "formula_edit", "formula_cdm", "overall", "repetition_rate"]
GROUP_COLUMNS = ["group", "pages", "text_edit", "formula_edit", "reading_order_edit", "table_teds", "table_edit",
                 "repetition_rate"]


def _groups(groups: dict[str, dict]) -> str:
    return render_markdown_table([{"group": name, **row} for name, row in groups.items()], GROUP_COLUMNS)


def summary_markdown(report: dict) -> str:
    parts = [render_markdown_table([report["summary"]], SUMMARY_COLUMNS)]
    if report.get("by_page_type"):
        parts.append("Per page type (OmniDocBench `data_source`; page-level means):\n\n"
                     + _groups(report["by_page_type"]))
    if report.get("by_attribute"):
        parts.append("Per page attribute (language, layout, special issues):\n\n" + _groups(report["by_attribute"]))
    note = report.get("omnidocbench", {}).get("overall_reason")
    if report["summary"].get("overall") is None and note:
        parts.append(f"Overall not reported. {note}")
    elif report["summary"].get("overall") is not None:
        parts.append(f"CDM (official metrics/cdm, {report.get('cdm', {}).get('pairs')} formula pairs) and Overall "
                     f"= ((1 - text_edit) x 100 + TEDS x 100 + CDM x 100) / 3 computed.")
    run = report.get("run") or {}
    if run.get("errors"):
        parts.append(f"{len(run['errors'])} page(s) failed and were scored as empty predictions "
                     f"(metrics.json `run.errors`); a rerun into this folder reads them again.")
    parts.append("Protocol:\n```json\n" + json.dumps(report.get("protocol", {}), indent=1, ensure_ascii=False)
                 + "\n```")
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"
