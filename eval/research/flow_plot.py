"""`python -m eval.research.flow_plot --model DIR --image page.png`: the causal-flow reading path as a PNG.

The page is turned into views the way the model reads (its reading recipe, `model.reading.views`; `--views` to
override, ocr2/processing/views.py) and its global view is analysed. Per encoder layer (and averaged over
layers), top row: the visual token each flow query attends to most, drawn in query order over the view as a path
through those token positions, its segments and one marker per query coloured by query index (colour bar: first
query dark, last query bright; the first query is also marked by a triangle, the last by a square). Bottom row:
the full query x visual attention map (colour bar: attention weight).
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from eval.research.flow_analysis import flow_attention, reading_path  # noqa: E402
from ocr2 import OCR2Model  # noqa: E402
from ocr2.processing.image import load_image  # noqa: E402
from ocr2.processing.reading import RELEASE_READING  # noqa: E402
from ocr2.processing.views import ViewRecipe, get_recipe, page_views  # noqa: E402
from ocr2.weights import resolve_model_dir  # noqa: E402

MAX_COLUMNS = 6  # panels per row; more layers wrap onto further rows


def _recipe(model: OCR2Model, views: str | ViewRecipe | None) -> ViewRecipe:
    """The recipe whose global view is analysed: `views`, else the model's reading recipe's. Only the global
    view is encoded here, so only its size needs a flow-query table."""
    cfg = model.config
    recipe = get_recipe(views or getattr(model, "reading", RELEASE_READING).views, cfg)
    if recipe.global_size not in cfg.encoder.query_view_sizes:
        raise ValueError(f"view recipe {recipe.name!r}: its {recipe.global_size}px global view has no flow-query "
                         f"table (the model has {list(cfg.encoder.query_view_sizes)}); pass --views with one it has")
    return recipe


def flow_figure(model: OCR2Model, image, layers: str = "all", views: str | ViewRecipe | None = None):
    """The reading-path figure (matplotlib Figure) of `image`'s global view under `views` (default: the model's
    reading recipe)."""
    recipe = _recipe(model, views)
    param = next(model.parameters())
    glob = page_views(image, recipe, model.config).global_view
    attn = flow_attention(model, glob[None].to(param.device, param.dtype))[:, 0]  # (layers, n_q, n_v)
    pixels = ((glob.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    panels = list(range(attn.shape[0])) if layers == "all" else [int(x) for x in layers.split(",")]
    maps = [(f"layer {i}", attn[i]) for i in panels] + [("mean of layers", attn.mean(0))]
    n_q, n_v = attn.shape[-2:]
    side = int(math.isqrt(n_v))
    size = pixels.shape[0]
    cell = size / side

    cols = min(len(maps), MAX_COLUMNS)
    blocks = math.ceil(len(maps) / cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(3.0 * cols + 1.6, 6.2 * blocks), squeeze=False,
                             layout="constrained")
    title = (f"Reading path of the flow queries: {recipe.name} global view ({size}² px, {side}x{side} visual "
             f"tokens, {n_q} queries)")
    fig.suptitle("\n".join(textwrap.wrap(title, width=int(20 * cols + 40))), fontsize=10)
    marker_size = max(6.0, min(40.0, 2400.0 / n_q))
    line_width = 1.6 if n_q <= 64 else 0.7
    path_axes, map_axes = [], []
    scatter = image_map = None
    for k, (name, a) in enumerate(maps):
        block, col = divmod(k, cols)
        ax, ax_map = axes[2 * block][col], axes[2 * block + 1][col]
        path_axes.append(ax)
        map_axes.append(ax_map)
        path = reading_path(a)
        xs = ((path % side).float() + 0.5) * cell
        ys = ((path // side).float() + 0.5) * cell
        ax.imshow(pixels, extent=(0, size, size, 0))
        # the path: one segment per step from query i to query i + 1, coloured like query i, on a dark underlay
        points = torch.stack([xs, ys], -1).numpy()
        segments = LineCollection(list(zip(points[:-1], points[1:])), cmap="viridis", linewidths=line_width,
                                  alpha=0.9, zorder=2, path_effects=[pe.Stroke(linewidth=line_width + 1.2,
                                                                               foreground="black"), pe.Normal()])
        segments.set_array(torch.arange(max(0, len(path) - 1)).numpy())
        segments.set_clim(0, max(1, n_q - 1))
        ax.add_collection(segments)
        scatter = ax.scatter(xs, ys, c=torch.arange(len(path)), cmap="viridis", vmin=0, vmax=max(1, n_q - 1),
                             s=marker_size, edgecolors="black", linewidths=0.4, zorder=3)
        ax.scatter(xs[:1], ys[:1], marker="^", s=4 * marker_size, c="none", edgecolors="red", linewidths=1.2,
                   zorder=4, label="first query")
        ax.scatter(xs[-1:], ys[-1:], marker="s", s=4 * marker_size, c="none", edgecolors="orange", linewidths=1.2,
                   zorder=4, label="last query")
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        distinct = len(set(path.tolist()))
        ax.set_title(f"{name}: reading path\n({distinct} of {n_v} tokens visited)", fontsize=8)
        image_map = ax_map.imshow(a, aspect="auto", cmap="magma", vmin=0)
        ax_map.set_xlabel("visual token (raster order)", fontsize=8)
        ax_map.set_ylabel("flow query", fontsize=8)
        ax_map.tick_params(labelsize=7)
        ax_map.set_title("query x visual attention", fontsize=8)
    for k in range(len(maps), blocks * cols):  # unused panels of the last row
        block, col = divmod(k, cols)
        axes[2 * block][col].set_visible(False)
        axes[2 * block + 1][col].set_visible(False)
    path_axes[0].legend(loc="lower left", fontsize=6, framealpha=0.8)
    bar = fig.colorbar(scatter, ax=path_axes, shrink=0.9, pad=0.02)
    bar.set_label("flow query index (reading order)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    bar_map = fig.colorbar(image_map, ax=map_axes, shrink=0.9, pad=0.02)
    bar_map.set_label("attention weight", fontsize=8)
    bar_map.ax.tick_params(labelsize=7)
    return fig


def plot(model: OCR2Model, image, out: Path, layers: str = "all", views: str | ViewRecipe | None = None) -> Path:
    """Write `flow_figure(...)` to `out` (PNG)."""
    fig = flow_figure(model, image, layers, views)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory or training run")
    p.add_argument("--image", required=True)
    p.add_argument("--out", default="flow.png")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    p.add_argument("--views", default=None,
                   help="view recipe whose global view is analysed (default: the checkpoint's reading recipe)")
    args = p.parse_args(argv)
    model = OCR2Model.from_pretrained(resolve_model_dir(args.model))
    print(f"wrote {plot(model, load_image(args.image), Path(args.out), args.layers, args.views)}")


if __name__ == "__main__":
    main()
