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
from typing import Iterable, Iterator

import torch
from PIL import Image

from ocr2.generation import NoRepeatNGram
from ocr2.grounding import GroundedBlock, parse_grounding, strip_grounding
from ocr2.modeling.model import OCR2Model
from ocr2.processing.image import ImageError, batch_views, load_image
from ocr2.processing.reading import RELEASE_READING, ReadingRecipe
from ocr2.processing.text import Tokenizer, encode_prompt, load_tokenizer
from ocr2.processing.views import ViewRecipe
from ocr2.query_tables import require_query_tables
from ocr2.weights import resolve_model_dir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
PDF_DPI = 144  # the release rasterises PDFs at 144 dpi (zoom 2.0, run_dpsk_ocr2_pdf.py)


@dataclass
class PageResult:
    source: str
    page: int | None = None  # 0-based page index for PDFs
    markdown: str = ""  # grounding spans stripped
    raw: str = ""  # decoded output as generated (special tokens kept)
    blocks: list[GroundedBlock] = field(default_factory=list)
    prompt_tokens: int = 0
    image_tokens: int = 0
    generated_tokens: int = 0
    hit_token_limit: bool = False  # no EOS within max_new_tokens: counted by the repetition-rate metric
    seconds: float = 0.0  # this page's share of its batch's wall time
    error: str | None = None

    @property
    def name(self) -> str:
        stem = Path(self.source).stem
        return stem if self.page is None else f"{stem}_p{self.page + 1:04d}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = [b.to_dict() for b in self.blocks]
        return d


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to their images and PDFs (sorted, non-recursive)."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".pdf"})
        else:
            out.append(path)
    return out


def iter_pages(path: Path, max_pixels: int | None = None) -> Iterator[tuple[int | None, Image.Image | Exception]]:
    """(page index or None, image or the error for that page/file)."""
    if path.suffix.lower() != ".pdf":
        try:
            yield None, load_image(path, max_pixels=max_pixels) if max_pixels else load_image(path)
        except (ImageError, OSError) as e:
            yield None, e
        return
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception as e:  # pypdfium2 raises PdfiumError for empty/broken files
        yield None, ValueError(f"{path}: cannot open PDF ({e})")
        return
    try:
        if len(pdf) == 0:
            yield None, ValueError(f"{path}: the PDF has no pages")
        for i in range(len(pdf)):
            try:
                image = pdf[i].render(scale=PDF_DPI / 72).to_pil().convert("RGB")
                yield i, load_image(image, max_pixels=max_pixels) if max_pixels else load_image(image)
            except Exception as e:
                yield i, ValueError(f"{path}: page {i + 1} cannot be rendered ({e})")
    finally:
        pdf.close()


def count_pages(paths: Iterable[Path]) -> int:
    """Pages the inputs hold (a PDF's page count from its header, 1 per image), for the progress bar's total."""
    import pypdfium2 as pdfium

    total = 0
    for path in paths:
        if path.suffix.lower() != ".pdf":
            total += 1
            continue
        try:
            pdf = pdfium.PdfDocument(str(path))
            total += max(1, len(pdf))
            pdf.close()
        except Exception:  # a broken PDF still yields one (failed) result
            total += 1
    return total


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
        from tqdm.auto import tqdm

        results: list[PageResult] = []
        pending: list[tuple[PageResult, Image.Image]] = []
        paths = expand_inputs(inputs)
        bar = tqdm(total=count_pages(paths), desc="pages", unit="page", disable=not progress)
        for path in paths:
            if not path.exists():
                results.append(PageResult(str(path), error=f"{path}: no such file"))
                bar.update(1)
                continue
            for page, item in iter_pages(path, self.max_pixels):
                if isinstance(item, Exception):
                    results.append(PageResult(str(path), page, error=str(item)))
                    bar.update(1)
                    continue
                res = PageResult(str(path), page)
                results.append(res)
                pending.append((res, item))
                if len(pending) == self.batch_size:
                    self._run(pending)
                    bar.update(len(pending))
                    pending = []
        if pending:
            self._run(pending)
            bar.update(len(pending))
        bar.close()
        return results

    def read_images(self, images: Iterable[tuple[str, Image.Image]], progress: bool = True) -> list[PageResult]:
        """In-memory pages (name, image) -> results in the same order; used by evaluation."""
        from tqdm.auto import tqdm

        items = [(PageResult(name), img.convert("RGB")) for name, img in images]
        bar = tqdm(total=len(items), desc="pages", unit="page", disable=not progress)
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            self._run(chunk)
            bar.update(len(chunk))
        bar.close()
        return [r for r, _ in items]

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
            res.blocks = parse_grounding(res.raw, *img.size)
            res.prompt_tokens, res.image_tokens = len(p), n
            res.generated_tokens, res.hit_token_limit, res.seconds = len(tokens), not ended, share


def save_with_tokenizer(model: OCR2Model, tokenizer: Tokenizer, directory, reading: ReadingRecipe | None = None
                        ) -> None:
    """A checkpoint directory that `OCRPipeline.from_pretrained` reads back: weights, config, reading recipe and
    tokenizer."""
    model.save_pretrained(directory, reading=reading)
    tokenizer.save(directory)
