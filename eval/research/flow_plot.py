"""`python -m eval.research.flow_plot --model DIR --image page.png`: the causal-flow reading path as a PNG.

For the page's global view: per encoder layer (and averaged over layers), the visual token each flow query
attends to most, drawn in query order over the page (a line through the token grid, coloured from first to
last query), beside the full query x visual attention map.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ocr2 import OCR2Model  # noqa: E402
from eval.research.flow_analysis import flow_attention, reading_path  # noqa: E402
from ocr2.processing.image import global_view, load_image, to_tensor  # noqa: E402
from ocr2.weights import resolve_model_dir  # noqa: E402


def plot(model: OCR2Model, image, out: Path, layers: str = "all") -> Path:
    size = model.config.global_view_size
    view = global_view(image, size)
    attn = flow_attention(model, to_tensor(view)[None])[:, 0]  # (layers, n_q, n_v)
    panels = list(range(attn.shape[0])) if layers == "all" else [int(x) for x in layers.split(",")]
    maps = [(f"layer {i}", attn[i]) for i in panels] + [("mean of layers", attn.mean(0))]
    side = int(math.isqrt(attn.shape[-1]))
    cell = size / side
    fig, axes = plt.subplots(2, len(maps), figsize=(3.2 * len(maps), 6.4), squeeze=False)
    for col, (title, a) in enumerate(maps):
        path = reading_path(a)
        ys, xs = (path // side).float(), (path % side).float()
        ax = axes[0][col]
        ax.imshow(view)
        ax.plot((xs + 0.5) * cell, (ys + 0.5) * cell, color="white", linewidth=0.6, alpha=0.7)
        ax.scatter((xs + 0.5) * cell, (ys + 0.5) * cell, c=torch.arange(len(path)), cmap="viridis", s=8)
        ax.set_title(f"{title}: reading path", fontsize=8)
        ax.axis("off")
        axes[1][col].imshow(a, aspect="auto", cmap="magma")
        axes[1][col].set(xlabel="visual token (raster)", ylabel="flow query")
        axes[1][col].set_title("query x visual attention", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory or training run")
    p.add_argument("--image", required=True)
    p.add_argument("--out", default="flow.png")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    args = p.parse_args(argv)
    model = OCR2Model.from_pretrained(resolve_model_dir(args.model))
    print(f"wrote {plot(model, load_image(args.image), Path(args.out), args.layers)}")


if __name__ == "__main__":
    main()
