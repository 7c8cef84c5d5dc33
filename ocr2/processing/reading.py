"""The reading recipe: how a checkpoint reads a page (views, prompt, decoding), saved beside its weights.

A model reads well only the way it was trained: the same views (ocr2/processing/views.py) and the same prompt.
Reading a model trained on single 256² views with the release's multi-crop views, or with the grounding prompt
when it learnt the plain one, silently gives wrong figures. So every model directory carries `reading.json`:

    {"views": "single:256", "prompt": "<image>\\nConvert the document to markdown.",
     "max_new_tokens": 512, "ngram_size": 20, "ngram_window": 90}

Training writes the recipe it trained with; `save_pretrained` and `ocr2-export` keep it; `OCRPipeline`,
`ocr2-infer`, `ocr2-eval` and `ocr2-report` read with it unless told otherwise. A directory without one (the
official release, the transformers port) reads the release's way: multi-crop views, the grounding markdown
prompt, greedy decoding with the release's no-repeat rule (n = 20 within a 90-token window), up to 8192 tokens.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ocr2.processing.views import get_recipe

READING_FILE = "reading.json"

PROMPT_MARKDOWN = "<image>\n<|grounding|>Convert the document to markdown."
# Plain markdown answers (no boxes) go with the release's prompt minus `<|grounding|>`: with that token the
# release answers in grounded form.
PROMPT_PLAIN_MARKDOWN = "<image>\nConvert the document to markdown."
PROMPT_FREE_OCR = "<image>\nFree OCR."
# Prompts by name, so none needs a literal newline on a command line.
PROMPTS = {"markdown": PROMPT_MARKDOWN, "plain_markdown": PROMPT_PLAIN_MARKDOWN, "free_ocr": PROMPT_FREE_OCR}


def resolve_prompt(prompt: str) -> str:
    """A prompt name (`markdown`, `plain_markdown`, `free_ocr`) or a literal prompt containing `<image>`."""
    if prompt in PROMPTS:
        return PROMPTS[prompt]
    if "<image>" not in prompt:
        raise ValueError(f"prompt {prompt!r} is neither a name ({sorted(PROMPTS)}) nor a prompt with <image>")
    return prompt


@dataclass(frozen=True)
class ReadingRecipe:
    views: str = "multi_crop"  # a view recipe name (ocr2/processing/views.py)
    prompt: str = PROMPT_MARKDOWN  # the literal prompt text (names are resolved before storing)
    max_new_tokens: int = 8192
    ngram_size: int = 20  # the release's no-repeat n-gram rule; 0 disables it
    ngram_window: int = 90

    def __post_init__(self):
        # Fail now, naming the value, rather than at the first page (or after minutes of model loading).
        get_recipe(self.views)
        object.__setattr__(self, "prompt", resolve_prompt(self.prompt))
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.ngram_size < 0 or self.ngram_size == 1:
            raise ValueError(f"ngram_size must be 0 (off) or >= 2, got {self.ngram_size}")
        if self.ngram_window < 1:
            raise ValueError(f"ngram_window must be >= 1, got {self.ngram_window}")

    def replace(self, **changes) -> "ReadingRecipe":
        """A copy with the non-None `changes` applied (explicit options override the checkpoint's recipe)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, directory: str | Path) -> None:
        Path(directory, READING_FILE).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "ReadingRecipe":
        """The directory's recipe; the release's when it has none (official or transformers-port layouts)."""
        path = Path(directory, READING_FILE)
        if not path.exists():
            return RELEASE_READING
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            return cls(**data)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a reading recipe ({e})") from e


RELEASE_READING = ReadingRecipe()
