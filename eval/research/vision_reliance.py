"""Does the model read the page, or only the language of the pages? Answer loss with the page vs. a blank page.

A decoder can lower its loss on synthetic text by learning the text's statistics alone (faker's English is a
~180-word lorem list); NED then improves without a single glyph being read. Scoring the ground-truth answer under
teacher forcing twice, once with the real page and once with the same-size white page, separates the two:
`vision_gain = blank_loss - page_loss` (nats per answer token) is ~0 for a model that ignores its eyes and grows
as it reads.

It also reports `visual_variation` (eval/research/visual_variation.py): the share of the projector's output that changes
from page to page. A vision path collapsed to a constant gives ~0 there, and then vision_gain cannot grow.
"""

from __future__ import annotations

from typing import Iterable

import torch
from PIL import Image

from eval.research.visual_variation import visual_variation
from ocr2.data.collate import collate
from ocr2.data.examples import ExampleEncoder
from ocr2.modeling.model import OCR2Model
from ocr2.processing.reading import PROMPT_PLAIN_MARKDOWN
from ocr2.processing.text import Tokenizer
from ocr2.processing.views import ViewRecipe

# Pages whose global views feed the variation figure (all at once, so capped: 16 official 1024² views ~ 200 MB).
VARIATION_PAGES = 16


@torch.no_grad()
def _mean_loss(model: OCR2Model, encoder: ExampleEncoder, rows: list[dict], pad_id: int, batch_size: int) -> float:
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = collate([encoder(r) for r in rows[i:i + batch_size]], pad_id)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] >= 0).sum())
        total += float(model(**batch).lm_loss) * n  # lm_loss is the token mean; weight batches by their tokens
        tokens += n
    return total / max(tokens, 1)


def vision_reliance(model: OCR2Model, pages: Iterable, tokenizer: Tokenizer, prompt: str = PROMPT_PLAIN_MARKDOWN,
                    views: str | ViewRecipe = "multi_crop", batch_size: int = 8) -> dict[str, float]:
    """pages: objects with `.stem`, `.image` (PIL) and `.markdown` (eval.pages.EvalPage); `prompt` and `views`:
    how the model reads (its reading recipe, `model.reading`, for a checkpoint read the way it trained)."""
    pages = [p for p in pages if p.markdown.strip()]
    if not pages:
        raise ValueError("vision_reliance needs at least one page with ground-truth text")
    encoder = ExampleEncoder(tokenizer, model.config, views, max_length=1 << 20, prompt=prompt)
    real = [{"id": p.stem, "image": p.image, "markdown": p.markdown} for p in pages]
    blank = [dict(r, image=Image.new("RGB", r["image"].size, "white")) for r in real]
    was_training = model.training
    model.eval()
    try:
        page_loss = _mean_loss(model, encoder, real, tokenizer.pad_id, batch_size)
        blank_loss = _mean_loss(model, encoder, blank, tokenizer.pad_id, batch_size)
        variation = _variation(model, encoder, real, tokenizer.pad_id)
    finally:
        model.train(was_training)
    return {"pages": len(pages), "page_loss": page_loss, "blank_loss": blank_loss,
            "vision_gain": blank_loss - page_loss, "visual_variation": variation}


def _variation(model: OCR2Model, encoder: ExampleEncoder, rows: list[dict], pad_id: int) -> float | None:
    """Across-page share of the projector output on the pages' global views; None for a single page."""
    rows = rows[:VARIATION_PAGES]
    if len(rows) < 2:
        return None
    views = collate([encoder(r) for r in rows], pad_id)["global_views"]
    return visual_variation(model, views.to(next(model.parameters()).device))["projector"]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from eval.pages import iter_pages
    from ocr2.processing.text import load_tokenizer
    from ocr2.weights import resolve_model_dir

    p = argparse.ArgumentParser(description="Answer loss with the page vs. a blank page (does the model read?)")
    p.add_argument("model", help="a from_pretrained directory or a training run directory")
    p.add_argument("data", help="an ocr2 dataset (ocr2-data synth / omnidocbench / folder)")
    p.add_argument("--split", default="validation")
    p.add_argument("--pages", type=int, default=32)
    p.add_argument("--views", default=None, help="view recipe (default: the checkpoint's reading recipe)")
    p.add_argument("--prompt", default=None, help="prompt name or text (default: the checkpoint's reading recipe)")
    args = p.parse_args(argv)
    model_dir = resolve_model_dir(args.model)
    model = OCR2Model.from_pretrained(model_dir)
    reading = model.reading.replace(views=args.views, prompt=args.prompt)
    pages = list(iter_pages(args.data, args.split, args.pages))
    print(json.dumps(vision_reliance(model, pages, load_tokenizer(model_dir), reading.prompt, reading.views),
                     indent=1))


if __name__ == "__main__":
    main()
