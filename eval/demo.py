"""The README's main job (until the training demo lands): read one rendered page with a tiny OCR-2.

Renders a synthetic document page with Pillow, preprocesses it exactly as the release does (global 1024² view +
768² crops), runs the tiny model's vision path, a forward pass and a short greedy generation, and prints the
shapes, token budget and timings of every stage. The model is untrained, so the generated text is noise: this
shows the pipeline end to end, not OCR quality.
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image, ImageDraw, ImageFont

from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.image import batch_views, preprocess
from ocr2.processing.text import PROMPT_MARKDOWN, ByteTokenizer, encode_prompt


def render_page(width: int = 1190, height: int = 1684) -> Image.Image:
    """An A4-proportioned page with a title and two columns (a reading order that is not raster order)."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    try:
        title = ImageFont.truetype("DejaVuSans-Bold.ttf", 44)
        body = ImageFont.truetype("DejaVuSans.ttf", 22)
    except OSError:
        title = body = ImageFont.load_default()
    draw.text((80, 70), "Visual Causal Flow", font=title, fill="black")
    col_w = (width - 200) // 2
    for col in range(2):
        x = 80 + col * (col_w + 40)
        for line in range(40):
            draw.text((x, 170 + line * 34), f"Column {col + 1}, line {line + 1}: reading order matters.",
                      font=body, fill=(20, 20, 20))
    return page


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny"])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    cfg = OCR2Config.from_preset(args.preset)
    tokenizer = ByteTokenizer()
    model, t_build = _timed(lambda: OCR2Model(cfg).eval())
    print(f"model      {args.preset}: {model.num_parameters() / 1e6:.2f} M parameters (built in {t_build:.2f} s)")

    page = render_page()
    views, t_pre = _timed(lambda: preprocess(page, cfg.global_view_size, cfg.crop_size))
    print(f"page       {page.size[0]}x{page.size[1]} px -> grid {views.grid} = {views.num_crops} crops "
          f"({t_pre * 1000:.0f} ms)")
    global_views, crops, num_crops = batch_views([views])
    print(f"views      global {tuple(global_views.shape)}, crops {tuple(crops.shape) if crops is not None else None}")

    ids = torch.tensor([encode_prompt(tokenizer, PROMPT_MARKDOWN, [cfg.image_token_count(views.num_crops)])])
    n_img = int((ids == cfg.image_token_id).sum())
    print(f"prompt     {ids.shape[1]} tokens, of which {n_img} <image> placeholders "
          f"(144*{views.num_crops} + 256 + 1)")

    with torch.no_grad():
        visual, t_tok = _timed(lambda: model.vision_tokenizer(global_views))
        print(f"tokenizer  global view -> visual tokens {tuple(visual.shape)} ({t_tok * 1000:.0f} ms)")
        flow, t_enc = _timed(lambda: model.encoder(visual, view_size=cfg.global_view_size))
        print(f"encoder    [visual ; queries] -> flow-query outputs {tuple(flow.shape)} ({t_enc * 1000:.0f} ms)")
        out, t_fwd = _timed(lambda: model(ids, global_views, crops, num_crops))
        print(f"forward    logits {tuple(out.logits.shape)} ({t_fwd:.2f} s)")
        gen, t_gen = _timed(lambda: model.generate(ids, global_views, crops, num_crops,
                                                   max_new_tokens=args.new_tokens, eos_token_id=-1))
    print(f"generate   {gen.shape[1]} new tokens in {t_gen:.2f} s ({gen.shape[1] / t_gen:.1f} tokens/s, "
          "KV-cached greedy, untrained weights)")
    print(f"text       {tokenizer.decode(gen[0].tolist())!r}")


if __name__ == "__main__":
    main()
