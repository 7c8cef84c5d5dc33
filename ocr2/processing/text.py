"""Tokenizers, the `<image>` placeholder layout and label masking (prompts: ocr2/processing/reading.py).

Two tokenizers share one small interface (`encode`, `decode`, special ids, `save`):
- `ByteTokenizer`: self-contained, byte-level, carrying the release's special tokens, for tiny and from-scratch
  runs; saved beside a checkpoint so a trained tiny model reloads with its tokenizer.
- `OfficialTokenizer`: the release's tokenizer read from a checkpoint folder with transformers' AutoTokenizer,
  local files only (never a hub call), with its special ids checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol, Sequence

from ocr2.tokens import BOS, EOS, IGNORE_INDEX, IMAGE_TOKEN, OFFICIAL_SPECIAL_IDS, PAD
TOKENIZER_FILE = "ocr2_tokenizer.json"


class Tokenizer(Protocol):
    bos_id: int
    eos_id: int
    pad_id: int
    image_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...
    def token_id(self, token: str) -> int: ...
    def save(self, directory: str | Path) -> None: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens, after the special tokens: ids 0..len(specials)-1 are the specials (same order as
    the release: BOS 0, EOS 1, PAD 2, then `<image>`, ref/det, grounding, table tags, User/Assistant)."""

    def __init__(self, special_tokens: Sequence[str] | None = None):
        specials = list(special_tokens or OFFICIAL_SPECIAL_IDS)
        self.special_tokens = specials
        self.special_to_id = {t: i for i, t in enumerate(specials)}
        self.byte_offset = len(specials)
        self.vocab_size = self.byte_offset + 256
        self.bos_id, self.eos_id, self.pad_id = (self.special_to_id[t] for t in (BOS, EOS, PAD))
        self.image_id = self.special_to_id[IMAGE_TOKEN]
        # Longest first so that no special token is split by a shorter one.
        self._split = re.compile("(" + "|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)) + ")")

    def token_id(self, token: str) -> int:
        return self.special_to_id[token]

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split.split(text):
            if not piece:
                continue
            if piece in self.special_to_id:
                ids.append(self.special_to_id[piece])
            else:
                ids.extend(b + self.byte_offset for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if self.byte_offset <= i < self.vocab_size:
                buf.append(i - self.byte_offset)
                continue
            if buf:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
            if 0 <= i < self.byte_offset and not skip_special_tokens:
                out.append(self.special_tokens[i])
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def save(self, directory: str | Path) -> None:
        Path(directory, TOKENIZER_FILE).write_text(
            json.dumps({"type": "byte", "special_tokens": self.special_tokens}, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> "ByteTokenizer":
        path = Path(directory, TOKENIZER_FILE)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read the ocr2 tokenizer ({e})") from e
        if data.get("type") != "byte":
            raise ValueError(f"{path}: unknown tokenizer type {data.get('type')!r}")
        return cls(data["special_tokens"])


class OfficialTokenizer:
    """The release's LlamaTokenizerFast, loaded from local files; special ids checked against the release."""

    def __init__(self, directory: str | Path):
        from transformers import AutoTokenizer

        try:
            self.hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
        except Exception as e:  # transformers raises OSError/ValueError variants for missing or broken files
            raise ValueError(f"{directory}: cannot load the official tokenizer ({e})") from e
        wrong = {t: (self.hf.convert_tokens_to_ids(t), i) for t, i in OFFICIAL_SPECIAL_IDS.items()
                 if t not in (BOS, EOS, PAD) and self.hf.convert_tokens_to_ids(t) != i}
        if wrong:
            raise ValueError(f"{directory}: tokenizer special ids differ from the release (got, expected): {wrong}")
        self.bos_id, self.eos_id, self.pad_id = 0, 1, 2
        self.image_id = OFFICIAL_SPECIAL_IDS[IMAGE_TOKEN]
        self.vocab_size = len(self.hf)

    def token_id(self, token: str) -> int:
        return int(self.hf.convert_tokens_to_ids(token))

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, directory: str | Path) -> None:
        self.hf.save_pretrained(str(directory))


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Our byte tokenizer when the checkpoint carries one, else the official tokenizer files."""
    directory = Path(directory)
    if (directory / TOKENIZER_FILE).exists():
        return ByteTokenizer.load(directory)
    if (directory / "tokenizer.json").exists() or (directory / "tokenizer_config.json").exists():
        return OfficialTokenizer(directory)
    raise ValueError(f"{directory}: no tokenizer found ({TOKENIZER_FILE} or tokenizer.json)")


# -------------------------------------------------------------------------------------------- prompt layout
def encode_prompt(tokenizer: Tokenizer, prompt: str, image_token_counts: Sequence[int]) -> list[int]:
    """[BOS] + text with each `<image>` replaced by that image's placeholders (crops + global + separator).

    `image_token_counts[i]` is `OCR2Config.image_token_count(num_crops_i)`: 144·k + 256 + 1 officially."""
    pieces = prompt.split(IMAGE_TOKEN)
    if len(pieces) - 1 != len(image_token_counts):
        raise ValueError(f"prompt has {len(pieces) - 1} {IMAGE_TOKEN} tags but {len(image_token_counts)} images")
    ids = [tokenizer.bos_id]
    for i, piece in enumerate(pieces):
        if piece:
            ids += tokenizer.encode(piece)
        if i < len(image_token_counts):
            ids += [tokenizer.image_id] * int(image_token_counts[i])
    return ids


def encode_example(tokenizer: Tokenizer, prompt: str, answer: str, image_token_counts: Sequence[int]
                   ) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for training: the prompt is context only; the answer and its EOS carry the loss."""
    prompt_ids = encode_prompt(tokenizer, prompt, image_token_counts)
    answer_ids = tokenizer.encode(answer) + [tokenizer.eos_id]
    return prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids
