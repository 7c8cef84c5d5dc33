"""Rename rules shared by every key map: ordered (regex, replacement) pairs; the first full match renames a key."""

from __future__ import annotations

import re

Rules = tuple[tuple[re.Pattern[str], str], ...]


def compile_rules(pairs) -> Rules:
    return tuple((re.compile(pattern), repl) for pattern, repl in pairs)


def apply_rules(rules: Rules, key: str) -> str:
    """`key` renamed by the first rule that matches it; KeyError naming the key when none does."""
    for pattern, repl in rules:
        if pattern.match(key):
            return pattern.sub(repl, key)
    raise KeyError(key)
