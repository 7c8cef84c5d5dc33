"""ocr2.json_lines: the JSON-lines reader behind eval resume, ocr2-report and the metrics log's truncation."""

from __future__ import annotations

import json

from ocr2.json_lines import read_json_lines


def test_a_torn_last_line_is_left_out(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n" + json.dumps({"step": 2}) + "\n" + '{"step": 3, "lo')
    assert read_json_lines(path) == [{"step": 1}, {"step": 2}]


def test_a_record_holding_a_unicode_line_separator_stays_whole(tmp_path):
    path = tmp_path / "log.jsonl"
    records = [{"stem": "a\u2028b"}, {"stem": "c\x85d"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert read_json_lines(path) == records
