"""What changed since the checkpoint a run resumes from, and whether the change breaks an exact resume.

Every checkpoint stores the resolved config it was trained with. A resume shows every difference; those that make
the continued run differ from an uninterrupted one (the model, the data and its order, the batch, the LR schedule,
the seed, the precision and the ZeRO layout) are refused unless `checkpoint.allow_changes=true`. Paths, logging
and checkpoint cadence may change freely.
"""

from __future__ import annotations

from typing import Any

# Top-level keys (or dotted prefixes) whose changes cannot break exactness. Not max_steps: the cosine LR schedule
# is a function of it, so every later LR moves.
# Validation only reads the model (no grad, no randomness): how often and on what may change between resumes.
FREE = ("run_dir", "run_name", "checkpoint", "logger", "log_every", "debug", "nonfinite", "hydra",
        "data.num_workers", "validation",
        "trainer.zero_init")  # zero.Init builds the same model; a resume then loads the checkpoint's state either way


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def differences(saved: dict, now: dict) -> dict[str, tuple[Any, Any]]:
    a, b = flatten(saved), flatten(now)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


# Keys added after checkpoints already existed, with the value that does what runs did before the key existed. A
# checkpoint whose config lacks such a key resumes without a refusal when the run keeps that value (or a neutral
# null / false / empty one).
INTRODUCED = {"data.source": "parquet", "data.shuffle_buffer": 1000, "trainer.device": "auto",
              "trainer.optimizer": "torch_adamw", "model.encoder.visual_positions": "raster",
              "model.encoder.query_positions": "sequential"}
_NEUTRAL = (None, False, [], {})


def breaks_exactness(key: str) -> bool:
    return not any(key == f or key.startswith(f + ".") for f in FREE)


def _introduced_unchanged(key: str, saved: dict, now: dict) -> bool:
    """`key` is absent from the saved config and its value now reproduces the behaviour from before it existed."""
    if key in saved:
        return False
    value = now.get(key)
    if key.startswith("lora.") and not now.get("lora.enabled"):
        return True  # LoRA settings mean nothing while LoRA is off
    return any(value == v and type(value) is type(v) for v in _NEUTRAL) or INTRODUCED.get(key, object()) == value


def check_resume(saved: dict | None, now: dict, allow: bool) -> list[str]:
    """Lines describing the differences (empty when none); raises ValueError for exactness-breaking ones."""
    if not saved:
        return []
    flat_saved, flat_now = flatten(saved), flatten(now)
    diff = {k: v for k, v in differences(saved, now).items() if not _introduced_unchanged(k, flat_saved, flat_now)}
    lines = [f"  {k}: {old!r} -> {new!r}" + ("" if not breaks_exactness(k) else "  (breaks exact resume)")
             for k, (old, new) in diff.items()]
    breaking = [k for k in diff if breaks_exactness(k)]
    if breaking and not allow:
        raise ValueError("the resumed checkpoint was trained with another config:\n" + "\n".join(lines)
                         + "\nthese changes make the run differ from an uninterrupted one; restore them, start a "
                           "new run_dir, or pass checkpoint.allow_changes=true to accept them")
    return lines
