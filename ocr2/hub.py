"""Hugging Face Hub ids as checkpoints: `deepseek-ai/DeepSeek-OCR-2` (or `org/name@revision`) -> a local folder.

The local cache comes first: a model downloaded once (`hf download deepseek-ai/DeepSeek-OCR-2`) is read from
`$HF_HUB_CACHE` (default `~/.cache/huggingface/hub`) without any network access. Only when it is not cached, and
`HF_HUB_OFFLINE` is not set, is it downloaded (weights, configs and tokenizer files only: the release's Python
files are never needed, and never run, since ocr2 has its own model code).

The cache layout is huggingface_hub's: `models--<org>--<name>/snapshots/<commit>/...` with `refs/<revision>`
naming the commit; `snapshot_download(local_files_only=True)` resolves it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# org/name as the Hub spells repository ids, optionally @revision (branch, tag or commit).
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
# What a checkpoint needs: weights, configs, tokenizer and processor files.
_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.json", "*.model", "*.txt"]


class HubCheckpointError(FileNotFoundError):
    pass


def is_hub_id(source) -> bool:
    """True for `org/name[@revision]` that is not a local path: neither it nor its first component exists here
    (so a mistyped `runs/my_run` fails as a missing local run instead of being looked up on the Hub)."""
    text = str(source)
    m = _HUB_ID.match(text)
    return bool(m) and not Path(text).exists() and not Path(m.group("repo").split("/")[0]).exists()


def _offline() -> bool:
    # Read at call time (huggingface_hub reads its constant once, at import).
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def snapshot_dir(source: str, cache_dir: str | Path | None = None) -> Path:
    """The local folder of Hub id `source`: the cached snapshot, else (online only) a fresh download."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    m = _HUB_ID.match(str(source))
    if not m:
        raise HubCheckpointError(f"{source}: not a local path and not a Hub id of the form org/name[@revision]")
    repo, revision = m.group("repo"), m.group("revision")
    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache_dir, local_files_only=True,
                                      allow_patterns=_PATTERNS))
    except LocalEntryNotFoundError:
        pass
    if _offline():
        raise HubCheckpointError(
            f"{source}: not in the local Hugging Face cache ({cache_dir or _cache_root()}) and HF_HUB_OFFLINE is "
            f"set; download it once where there is network (`hf download {repo}`) or pass a local folder")
    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache_dir, allow_patterns=_PATTERNS))
    except Exception as e:  # network, authentication or missing-repo errors: one message naming the id
        raise HubCheckpointError(f"{source}: could not download from the Hugging Face Hub ({e})") from e


def _cache_root() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
