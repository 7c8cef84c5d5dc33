"""Read documents: files, folders and PDFs in; per page markdown, grounded blocks, token counts and timings out.

`OCRPipeline` is the Python API behind `ocr2-infer`: it returns results and never only prints. Every input file
gets its own result or its own error (unreadable image, broken PDF, decompression bomb); one bad file never
stops the others. A pipeline reads the way its checkpoint says (`reading.json`: views, prompt, decoding;
ocr2/processing/reading.py); any of those given explicitly overrides it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from PIL import Image

from ocr2.documents import expand_inputs, iter_pages, page_names
from ocr2.generation import NoRepeatNGram
from ocr2.grounding import GroundedBlock, parse_grounding, strip_grounding
from ocr2.modeling.model import OCR2Model
from ocr2.processing.image import batch_views
from ocr2.processing.reading import RELEASE_READING, ReadingRecipe
from ocr2.processing.text import Tokenizer, encode_prompt, load_tokenizer
from ocr2.processing.views import ViewRecipe
from ocr2.query_tables import require_query_tables
from ocr2.weights import resolve_model_dir

@dataclass
class PageResult:
    source: str
    page: int | None = None  # 0-based page index for PDFs
    name: str = ""  # what the outputs are called: unique across the inputs of one call (ocr2/documents.py)
    markdown: str = ""  # grounding spans stripped
    raw: str = ""  # decoded output as generated (special tokens kept)
    blocks: list[GroundedBlock] = field(default_factory=list)
    prompt_tokens: int = 0
    image_tokens: int = 0
    generated_tokens: int = 0
    hit_token_limit: bool = False  # no EOS within max_new_tokens: counted by the repetition-rate metric
    seconds: float = 0.0  # this page's share of its batch's wall time
    error: str | None = None
    skipped: bool = False  # not read: the caller said its outputs already exist

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = [b.to_dict() for b in self.blocks]
        return d


class OCRPipeline:
    """Pages in, `PageResult`s out, read with one reading recipe.

    `reading`: the recipe (default: the model's own, `model.reading`, which `from_pretrained` loads from the
    checkpoint; else the release's). `views` (a recipe name or a `ViewRecipe`), `prompt` (a name such as
    `plain_markdown`, or text with `<image>`), `max_new_tokens`, `ngram_size` (0: no no-repeat rule) and
    `ngram_window` override it one by one."""

    def __init__(self, model: OCR2Model, tokenizer: Tokenizer, reading: ReadingRecipe | None = None,
                 views: str | ViewRecipe | None = None, prompt: str | None = None, max_new_tokens: int | None = None,
                 ngram_size: int | None = None, ngram_window: int | None = None, batch_size: int = 4,
                 max_pixels: int | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        reading = reading or getattr(model, "reading", None) or RELEASE_READING
        custom = views if isinstance(views, ViewRecipe) else None
        self.reading = reading.replace(views=None if custom else views, prompt=prompt,
                                       max_new_tokens=max_new_tokens, ngram_size=ngram_size,
                                       ngram_window=ngram_window)
        self.recipe = require_query_tables(model.config, custom or self.reading.views)
        self.prompt, self.max_new_tokens = self.reading.prompt, self.reading.max_new_tokens
        self.batch_size, self.max_pixels = batch_size, max_pixels
        self.no_repeat = None
        if self.reading.ngram_size:
            whitelist = tuple(tokenizer.token_id(t) for t in ("<td>", "</td>"))  # tables repeat these legitimately
            self.no_repeat = NoRepeatNGram(self.reading.ngram_size, self.reading.ngram_window, whitelist)

    @classmethod
    def from_pretrained(cls, directory, device: str | None = None, dtype: torch.dtype | None = None,
                        **kwargs) -> "OCRPipeline":
        """`directory`: a model directory (ocr2, official or transformers-port layout) or a training run (its
        latest checkpoint). Reads the way the checkpoint trained unless `kwargs` override (see the class)."""
        directory = resolve_model_dir(directory)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # bf16 on GPU as the release runs; fp32 on CPU (bf16 matmuls are many times slower on CPUs).
        dtype = dtype or (torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32)
        model = OCR2Model.from_pretrained(directory, dtype=dtype, device=device)
        return cls(model, load_tokenizer(directory), **kwargs)

    def __call__(self, inputs: Iterable[str | Path], progress: bool = True) -> list[PageResult]:
        return list(self.iter_results(inputs, progress))

    def iter_results(self, inputs: Iterable[str | Path], progress: bool = True,
                     skip: Callable[[str], bool] | None = None,
                     stop: Callable[[], bool] | None = None) -> Iterator[PageResult]:
        """Results as each batch is done, so a caller can write them at once. `skip(name)`: True for pages
        not to read (their result comes back with `skipped`; a PDF page is then not even rendered). `stop()`:
        checked between batches; True ends the iteration, dropping pages not yet read (a signal handler's flag).
        Every failure (unreadable file, a page that breaks the model or the post-processing) is that page's
        error and never stops the others."""
        from tqdm.auto import tqdm

        paths = expand_inputs(inputs)
        names = page_names([p for p in paths if p.exists()])
        bar = tqdm(total=sum(len(names.get(p, [p.stem])) for p in paths), desc="pages", unit="page",
                   disable=not progress)
        pending: list[tuple[PageResult, object]] = []

        def flush() -> Iterator[PageResult]:
            self._run_isolated(pending)
            bar.update(len(pending))
            done = [r for r, _ in pending]
            pending.clear()
            yield from done

        try:
            for path in paths:
                if stop is not None and stop():
                    return
                if not path.exists():
                    bar.update(1)
                    yield PageResult(str(path), name=path.stem, error=f"{path}: no such file")
                    continue
                file_names = names[path]
                skipped = {i for i, n in enumerate(file_names) if skip is not None and skip(n)}
                for page, item in iter_pages(path, self.max_pixels, skip=skipped):
                    name = file_names[min(page or 0, len(file_names) - 1)]
                    if item is None:
                        bar.update(1)
                        yield PageResult(str(path), page, name=name, skipped=True)
                    elif isinstance(item, Exception):
                        bar.update(1)
                        yield PageResult(str(path), page, name=name, error=str(item))
                    else:
                        pending.append((PageResult(str(path), page, name=name), item))
                        if len(pending) == self.batch_size:
                            yield from flush()
                            if stop is not None and stop():
                                return
            if pending:
                yield from flush()
        finally:
            bar.close()

    def read_images(self, images: Iterable[tuple[str, Image.Image]], progress: bool = True) -> list[PageResult]:
        """In-memory pages (name, image) -> results in the same order; used by evaluation."""
        from tqdm.auto import tqdm

        items = [(PageResult(name, name=name), img.convert("RGB")) for name, img in images]
        bar = tqdm(total=len(items), desc="pages", unit="page", disable=not progress)
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            self._run_isolated(chunk)
            bar.update(len(chunk))
        bar.close()
        return [r for r, _ in items]

    def _run_isolated(self, batch: list[tuple[PageResult, object]]) -> None:
        """`_run` on the batch; if it fails, page by page, so one page that breaks only fails itself."""
        try:
            self._run(batch)
            return
        except Exception:  # noqa: BLE001 - any failure: retry alone to find the page(s) that cause it
            if len(batch) == 1:
                res, _ = batch[0]
                import traceback

                res.error = f"{res.source}" + (f" page {res.page + 1}" if res.page is not None else "") + \
                    ": " + traceback.format_exc(limit=1).strip().splitlines()[-1]
                return
        for item in batch:
            self._run_isolated([item])

    @torch.no_grad()
    def _run(self, batch: list[tuple[PageResult, Image.Image]]) -> None:
        start = time.perf_counter()
        cfg, tok, device = self.model.config, self.tokenizer, next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        views = [self.recipe.views(img) for _, img in batch]
        counts = [self.recipe.image_tokens(img.size, cfg) for _, img in batch]
        prompts = [encode_prompt(tok, self.prompt, [n]) for n in counts]
        width = max(map(len, prompts))
        ids = torch.full((len(batch), width), tok.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):  # left padding: every row's next token sits at the same column
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        global_views, crops, num_crops = batch_views(views)
        crops = crops.to(device, dtype) if crops is not None else None
        new = self.model.generate(ids.to(device), global_views.to(device, dtype), crops, num_crops,
                                  attention_mask=mask.to(device), max_new_tokens=self.max_new_tokens,
                                  eos_token_id=tok.eos_id, logits_processor=self.no_repeat).cpu()
        share = (time.perf_counter() - start) / len(batch)
        for row, ((res, img), v, p, n) in enumerate(zip(batch, views, prompts, counts)):
            tokens = new[row].tolist()
            ended = tok.eos_id in tokens
            tokens = tokens[: tokens.index(tok.eos_id)] if ended else tokens
            res.raw = tok.decode(tokens)
            res.markdown = strip_grounding(res.raw)
            res.blocks = parse_grounding(res.raw, *img.size)  # malformed spans give blocks without boxes
            res.prompt_tokens, res.image_tokens = len(p), n
            res.generated_tokens, res.hit_token_limit, res.seconds = len(tokens), not ended, share


def save_with_tokenizer(model: OCR2Model, tokenizer: Tokenizer, directory, reading: ReadingRecipe | None = None
                        ) -> None:
    """A checkpoint directory that `OCRPipeline.from_pretrained` reads back: weights, config, reading recipe and
    tokenizer."""
    model.save_pretrained(directory, reading=reading)
    tokenizer.save(directory)
