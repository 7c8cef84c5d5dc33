"""The markdown table renderer used for metric summaries."""

from eval.report_table import flatten, render_markdown_table


def test_flatten_uses_dotted_names():
    assert flatten({"table": {"TEDS": 0.8, "n": 2}, "ned": 0.1}) == {"table.TEDS": 0.8, "table.n": 2, "ned": 0.1}


def test_render_table_formats_numbers_missing_values_and_pipes():
    rows = [{"variant": "causal_flow", "ned": 0.12345, "cdm": None}, {"variant": "a|b", "ned": 1}]
    assert render_markdown_table(rows) == (
        "| variant | ned | cdm |\n"
        "|---|---:|---|\n"
        "| causal_flow | 0.1235 | n/a |\n"
        "| a\\|b | 1 | n/a |\n"
    )


def test_render_table_selects_and_renames_columns():
    out = render_markdown_table([{"a": 1.0, "b": 2.0}], columns=["b"], headers={"b": "Text NED"}, digits=2)
    assert out == "| Text NED |\n|---:|\n| 2.00 |\n"


def test_render_empty_table():
    assert render_markdown_table([]) == ""
