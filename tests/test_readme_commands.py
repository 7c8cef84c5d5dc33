"""The README's commands table names every command with its real name: each console script of pyproject.toml,
and each `python -m` module with a `main` under eval/research and eval/bench."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands_table() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Commands"):readme.index("## The model as a library")]


def test_every_console_script_is_in_the_commands_table():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    table = _commands_table()
    assert [name for name in scripts if f"`{name}" not in table] == []


def test_every_research_and_bench_command_is_in_the_commands_table():
    table = _commands_table()
    modules = [f"eval.{p.parent.name}.{p.stem}" for folder in ("research", "bench")
               for p in sorted((ROOT / "eval" / folder).glob("*.py"))
               if re.search(r"^def main\(", p.read_text(), re.M)]
    assert modules, "no commands found"
    missing = [m for m in modules if f"python -m {m}" not in table and not (m == "eval.bench.model"
                                                                             and "ocr2-bench" in table)]
    assert missing == []
