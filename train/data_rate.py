"""How many pages per second one DataLoader worker prepares: decode, multi-crop views, tokens (ocr2-train's own
ExampleEncoder and batch builder), for a page that gives the release's largest input (1024² global view + 6 crops
of 768²). Divide the pages a step needs per rank by the step time to get the workers `data.num_workers` must give.

    python -m train.data_rate                          # 1275x1650 PNG (US letter at 150 dpi: 2x3 crops), 20 pages
    python -m train.data_rate --size 2480x3508 --format jpeg --pages 10
"""

from __future__ import annotations

import argparse
import io
import random
import time

import torch


def render_page(width: int, height: int, seed: int = 0):
    """A text-like page: dark word-sized boxes in lines on white (the decoder's compression sees real pages'
    entropy; pure noise or a blank page would decode at other speeds)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    line = max(12, height // 60)
    for y in range(line * 2, height - line * 2, line + line // 2):
        x = width // 12
        while x < width - width // 12:
            w = rng.randint(line, line * 5)
            draw.rectangle((x, y, min(x + w, width - width // 12), y + line), fill=(rng.randint(0, 60),) * 3)
            x += w + line // 2
    return image


def measure(pages: int, width: int, height: int, fmt: str = "png") -> dict:
    from ocr2 import OCR2Config
    from ocr2.data.collate import BatchBuilder
    from ocr2.data.examples import ExampleEncoder
    from ocr2.processing.text import ByteTokenizer

    buf = io.BytesIO()
    render_page(width, height).save(buf, format=fmt.upper())
    row = {"id": "page", "image": buf.getvalue(), "markdown": "word " * 400}
    tokenizer = ByteTokenizer()
    config = OCR2Config.from_preset("official")
    encoder = ExampleEncoder(tokenizer, config, ("multi_crop",), max_length=8192)
    example = encoder(row)  # warm-up (first calls allocate and import)
    builder = BatchBuilder(1, tokenizer.pad_id, False, 8192)
    start = time.perf_counter()
    for _ in range(pages):
        builder.add(encoder(row))
        builder.build()
    seconds = time.perf_counter() - start
    return {"pages_per_s": pages / seconds, "ms_per_page": 1e3 * seconds / pages, "crops": int(example.num_crops),
            "global": tuple(example.global_view.shape), "bytes": len(row["image"]), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.data_rate", description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=20)
    p.add_argument("--size", default="1275x1650", help="page width x height in pixels (1275x1650)")
    p.add_argument("--format", choices=("png", "jpeg"), default="png")
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r}: give WIDTHxHEIGHT, e.g. 1275x1650")
    # A DataLoader worker runs with one intra-op thread (torch sets it in every worker): measure that way.
    torch.set_num_threads(1)
    r = measure(args.pages, width, height, args.format)
    print(f"{width}x{height} {args.format} ({r['bytes'] / 1e3:.0f} kB): global {r['global']} + {r['crops']} crops; "
          f"{r['ms_per_page']:.0f} ms/page = {r['pages_per_s']:.1f} pages/s per worker (1 thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
