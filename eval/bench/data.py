"""`python -m eval.bench.data`: synthetic pages per second on one core (render, and render + PNG encode as `synth` stores).

One process, so the number is per core; `synth --workers N` scales it by about N on N free cores.
"""

from __future__ import annotations

import dataclasses
import time

from tqdm.auto import tqdm

from data_pipelines import PageGenerator, SynthConfig, encode_image, page_seed


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


def main(argv: list[str] | None = None) -> int:
    import argparse

    from data_pipelines import add_synth_config_args, synth_config

    p = argparse.ArgumentParser(prog="python -m eval.bench.data", description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-format", choices=("png", "jpeg"), default="png")
    add_synth_config_args(p)
    args = p.parse_args(argv)
    cfg = synth_config(args)
    if not args.long_side:
        cfg = fixed_size(cfg, 1024)
    print(report(bench(cfg, args.pages, args.seed, args.image_format)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
