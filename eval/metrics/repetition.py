"""The repetition rate: the share of outputs caught in a decoding loop or cut off by the token limit.

DeepSeek-OCR 2 reports it as its production metric (repetition in online OCR outputs); a loop usually runs until
`max_new_tokens` (the release's `run_dpsk_ocr2_eval_batch.py` decodes greedily with max_tokens=8192 and a
no-repeat-n-gram guard), so hitting the limit is counted as well.

Loop detector (ours, character based so it does not depend on a tokenizer): the end of the output is
*periodic* - its last `span` characters repeat a unit of `L` characters, i.e. `text[i] == text[i - L]` for every
position of the span (a loop cut mid-unit by the token limit still qualifies). It is a loop when the unit occurs
at least `min_repeats` times and the periodic span is at least `min_span_chars` long, for some
`L <= max_unit_chars`. Looking only at the tail keeps ordinary repetitive content (tables with identical rows,
dotted leaders) from counting: those stop repeating before the output ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Loop:
    unit: str  # one period of the repeated tail
    repeats: float  # how many units the periodic tail spans (fractional when cut mid-unit)
    span_chars: int  # length of the periodic tail


def _periodic_tail(rev: str, period: int) -> int:
    """Length of the longest suffix of the (reversed) text with the given period: binary search on slices."""
    lo, hi = 0, len(rev) - period  # rev[:k] == rev[period:period + k] holds for k <= answer
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if rev[:mid] == rev[period : period + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo + period


def detect_loop(
    text: str, min_repeats: int = 4, min_span_chars: int = 40, max_unit_chars: int = 1000
) -> Loop | None:
    """The shortest repeating unit at the end of `text` that makes it a loop, or None."""
    s = text.rstrip()
    rev = s[::-1]
    for period in range(1, min(max_unit_chars, len(s) // min_repeats) + 1):
        if rev[0] != rev[period]:  # cheap rejection: most periods fail on the first character
            continue
        span = _periodic_tail(rev, period)
        if span >= min_span_chars and span >= min_repeats * period:
            return Loop(unit=s[len(s) - period :], repeats=span / period, span_chars=span)
    return None


def hit_token_limit(num_new_tokens: int, max_new_tokens: int, stopped_by_eos: bool = False) -> bool:
    """True when generation ended because it ran out of budget rather than by emitting EOS."""
    return not stopped_by_eos and num_new_tokens >= max_new_tokens


def is_repetitive(text: str, hit_limit: bool = False, **loop_kwargs) -> bool:
    """One output counts towards the repetition rate: it hit the token limit or ends in a loop."""
    return bool(hit_limit) or detect_loop(text, **loop_kwargs) is not None


def repetition_rate(
    outputs: Sequence[str], hit_limit_flags: Sequence[bool] | None = None, **loop_kwargs
) -> float:
    """Fraction of `outputs` that loop or hit the token limit (`hit_limit_flags[i]`; all False when omitted)."""
    if not outputs:
        raise ValueError("repetition_rate of no outputs is undefined")
    flags = list(hit_limit_flags) if hit_limit_flags is not None else [False] * len(outputs)
    if len(flags) != len(outputs):
        raise ValueError(f"{len(flags)} hit-limit flags for {len(outputs)} outputs")
    return sum(is_repetitive(t, f, **loop_kwargs) for t, f in zip(outputs, flags)) / len(outputs)
