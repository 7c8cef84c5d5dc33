"""`ocr2-data bench`: synthetic pages per second on one core (render, and render + PNG encode as `synth` stores).

One process, so the number is per core; `synth --workers N` scales it by about N on N free cores.
"""

from __future__ import annotations

import dataclasses
import time

from tqdm.auto import tqdm

from data_pipelines.synth.config import SynthConfig
from data_pipelines.synth.page import PageGenerator, page_seed
from data_pipelines.writer import encode_image


def bench(config: SynthConfig, pages: int = 50, seed: int = 0, image_format: str = "png") -> dict[str, float]:
    gen = PageGenerator(config)
    gen.page(page_seed(seed, "warmup", 0))  # font loading and faker set-up are one-off costs
    render = encode = 0.0
    for i in tqdm(range(pages), desc="bench", unit="page"):
        t0 = time.perf_counter()
        page = gen.page(page_seed(seed, "bench", i))
        t1 = time.perf_counter()
        encode_image(page.image, image_format)
        render += t1 - t0
        encode += time.perf_counter() - t1
    return {"pages": pages, "long_side": config.long_side[1], "render_pages_per_s": pages / render,
            "render_and_encode_pages_per_s": pages / (render + encode), "image_format": image_format}


def report(result: dict[str, float]) -> str:
    return (f"{result['pages']} pages at long side {result['long_side']} px, 1 core: "
            f"{result['render_pages_per_s']:.1f} pages/s rendered, "
            f"{result['render_and_encode_pages_per_s']:.1f} pages/s rendered + {result['image_format']}-encoded")


def fixed_size(config: SynthConfig, long_side: int) -> SynthConfig:
    return dataclasses.replace(config, long_side=(long_side, long_side))
