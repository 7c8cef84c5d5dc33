"""Mild scan-like degradations (small rotation, blur, noise, JPEG), and paper texture.

A rotation moves the ground-truth polygons with the page (rotated about the image centre), so `poly` stays an
exact quadrilateral around each block; the other degradations leave geometry unchanged.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from data_pipelines.synth.config import DegradeConfig


def paper_texture(image: Image.Image, rng: random.Random, strength: float = 10.0) -> Image.Image:
    """Low-frequency blotches: coarse random noise upscaled smoothly and added to the page."""
    w, h = image.size
    gen = np.random.default_rng(rng.getrandbits(32))
    coarse = gen.normal(128, strength, size=(max(2, h // 24), max(2, w // 24))).clip(0, 255).astype(np.uint8)
    tex = Image.fromarray(coarse, "L").resize((w, h), Image.Resampling.BILINEAR).convert("RGB")
    return ImageChops.add(image, tex, scale=1.0, offset=-128)


def rotate_polys(blocks: list[dict], angle: float, width: int, height: int) -> None:
    """Rotate every block's poly like `Image.rotate(angle)` rotates pixels (counter-clockwise, about the centre)."""
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = width / 2, height / 2
    for b in blocks:
        p = b["poly"]
        out = []
        for x, y in zip(p[0::2], p[1::2]):
            dx, dy = x - cx, y - cy
            # Screen coordinates (y down): a counter-clockwise turn on screen.
            nx, ny = cx + dx * cos + dy * sin, cy - dx * sin + dy * cos
            out += [round(min(max(nx, 0.0), width), 1), round(min(max(ny, 0.0), height), 1)]
        b["poly"] = out


def degrade(image: Image.Image, blocks: list[dict], rng: random.Random, cfg: DegradeConfig,
            background: tuple[int, int, int]) -> tuple[Image.Image, list[str]]:
    """The degraded page and the names of the degradations applied (blocks' polys updated in place)."""
    applied = []
    if rng.random() < cfg.p_rotate:
        angle = rng.uniform(-cfg.max_angle, cfg.max_angle)
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=background)
        rotate_polys(blocks, angle, *image.size)
        applied.append(f"rotate{angle:+.2f}")
    if rng.random() < cfg.p_blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.blur_radius)))
        applied.append("blur")
    if rng.random() < cfg.p_noise:
        gen = np.random.default_rng(rng.getrandbits(32))
        arr = np.asarray(image, dtype=np.int16)
        noise = gen.normal(0.0, rng.uniform(*cfg.noise_sigma), size=arr.shape[:2]).astype(np.int16)
        image = Image.fromarray((arr + noise[..., None]).clip(0, 255).astype(np.uint8), "RGB")
        applied.append("noise")
    if rng.random() < cfg.p_jpeg:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=rng.randint(*cfg.jpeg_quality))
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
        applied.append("jpeg")
    return image, applied
