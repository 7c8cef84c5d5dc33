"""`ocr2-bench scaling`: how cost grows with the page and the generation, from one command.

Four sweeps, ours and the port interleaved on the same weights (eval/bench/model.py builds them):
  crops      one page (vision path + prefill + 1 token, no grad) with 0..6 crops  -> seconds per crop
  batch      1/2/4 pages at once (2 crops each), and a decode step at that batch  -> seconds per page
  tokens     greedy generation of 32/128/512 tokens after the page                -> ms per generated token
  cache      one decode step over 600..8,000 cached positions (eval/bench/decode_step.py) -> µs per position
Each point is the median of `--repeats` with its spread (noise rule of eval/bench/stats.py: a point, and a slope
fitted through it, read `noisy: rerun` when a point's spread exceeds `--max-spread`). Slopes are least squares
through the medians. Peak memory per point is measured on CUDA (`max_memory_allocated`, cheap there); on CPU a
clean peak needs a fresh process per point, so it is left to ocr2-bench's peak RSS rows. A PNG plot of the four
sweeps is written with matplotlib when it is installed.

    ocr2-bench scaling                           # official-shallow, CPU, every sweep (~10-20 min on 2 cores)
    ocr2-bench scaling --sweeps cache,tokens --repeats 5 --plot runs/bench/scaling.png
    python -m eval.bench.scaling --size small    # the same entry point
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable

import torch

from eval.bench.decode_step import step_pair
from eval.bench.model import SIZES, TEXT_TOKENS, build_pair, decode_bytes, load_line, make_inputs
from eval.bench.peak import gemv_bandwidth
from eval.bench.stats import DEFAULT_MAX_SPREAD, NOISY, Progress, Sample, cell, fit_line, refused
from eval.bench.timing import time_calls

SWEEPS = ("crops", "batch", "tokens", "cache")
SIDES = ("ours", "port")


@dataclasses.dataclass
class Sweep:
    """One sweep: x values, and per side one Sample (seconds) per x; `mem` per side per x in MiB (CUDA)."""

    name: str
    x_label: str
    unit: str  # shown unit of the y values
    scale: float  # seconds -> shown unit
    slope_unit: str
    slope_scale: float  # seconds per x -> shown slope unit
    xs: list[int] = dataclasses.field(default_factory=list)
    points: dict[str, list[Sample]] = dataclasses.field(default_factory=lambda: {s: [] for s in SIDES})
    mem: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {s: [] for s in SIDES})
    floor_slope: float | None = None  # seconds per x that the bytes read per x cost at the measured bandwidth
    floor_note: str = ""


def slope_of(xs: list[float], samples: list[Sample], max_spread: float) -> tuple[float, float] | None:
    """(slope, r²) of the medians, or None when a point is refused by the noise rule (or too few points)."""
    if len(xs) < 2 or any(refused(s.median, s.spread, max_spread) for s in samples):
        return None
    slope, _, r2 = fit_line(list(map(float, xs)), [s.median for s in samples])
    return slope, r2


def format_sweep(sw: Sweep, max_spread: float) -> list[str]:
    head = [sw.x_label] + [f"{side} ({sw.unit})" for side in SIDES] + ["spread ours", "spread port", "port/ours"]
    if any(sw.mem[s] for s in SIDES):
        head += ["ours MiB", "port MiB"]
    body = []
    for i, x in enumerate(sw.xs):
        o, p = sw.points["ours"][i], sw.points["port"][i]
        ok = not (refused(o.median, o.spread, max_spread) or refused(p.median, p.spread, max_spread))
        line = [str(x), cell(o.median * sw.scale, o.spread, max_spread), cell(p.median * sw.scale, p.spread, max_spread),
                f"{100 * o.spread:.0f}%", f"{100 * p.spread:.0f}%", f"{p.median / o.median:.2f}x" if ok else NOISY]
        if len(head) > 6:
            line += [f"{sw.mem[s][i]:.0f}" for s in SIDES]
        body.append(line)
    fits = []
    for side in SIDES:
        fit = slope_of(sw.xs, sw.points[side], max_spread)
        fits.append(f"{side}: {NOISY}" if fit is None else
                    f"{side}: {fit[0] * sw.slope_scale:.4g} {sw.slope_unit} (r² {fit[1]:.3f})")
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    floor = ([] if sw.floor_slope is None else
             [f"  bandwidth floor per {sw.x_label}: {sw.floor_slope * sw.slope_scale:.4g} {sw.slope_unit} "
              f"({sw.floor_note})"])
    return ([f"{sw.name}:", fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]
            + [f"  least-squares slope per {sw.x_label}: " + "; ".join(fits)] + floor)


def _cuda_peak(fn: Callable, device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def page_fns(ours, port, x, batch: int, new_tokens: int) -> tuple[Callable, Callable]:
    """Greedy generation of `new_tokens` for `batch` copies of the page (vision path and prefill included)."""
    ids = x.input_ids[:, : -TEXT_TOKENS // 2].repeat(batch, 1)  # the page and some text, as ocr2-bench's generate
    glob = x.global_views.repeat(batch, 1, 1, 1)
    crops = x.crops.repeat(batch, 1, 1, 1) if x.crops is not None else None
    counts = x.num_crops * batch

    def run_ours():
        out = ours.generate(ids, glob, crops, counts, max_new_tokens=new_tokens, eos_token_id=-1)
        assert out.shape[1] == new_tokens

    @torch.no_grad()
    def run_port():  # min_new_tokens: random weights can emit EOS
        out = port.generate(input_ids=ids, pixel_values=glob, pixel_values_local=crops,
                            num_local_patches=counts if crops is not None else None, max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, do_sample=False, eos_token_id=1, pad_token_id=2)
        assert out.shape[1] - ids.shape[1] == new_tokens

    return run_ours, run_port


def measure(args) -> list[Sweep]:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    ours, port = build_pair(args.size, args.backend, device, dtype)
    ours.eval()
    port.eval()
    cfg = ours.config
    crops_list, batches, tokens, caches = (args.crops_list, args.batches, args.tokens, args.cache_lens)
    total = sum(len(v) for k, v in (("crops", crops_list), ("batch", batches), ("tokens", tokens),
                                    ("cache", caches)) if k in args.sweeps) + len(batches) * ("batch" in args.sweeps)
    progress = Progress(total, "points")
    sweeps = []

    def point(sw: Sweep, x: int, fns, setups=None, repeats=None) -> None:
        times = time_calls(fns, repeats or args.repeats, device, setups)
        sw.xs.append(x)
        for side, ts in zip(SIDES, times):
            sw.points[side].append(Sample(ts))
        if device.type == "cuda":
            for side, fn in zip(SIDES, fns):
                sw.mem[side].append(_cuda_peak(fn, device))
        o, p = (s[-1].median * sw.scale for s in sw.points.values())
        progress.step(f"{sw.name} {sw.x_label}={x}: ours {o:.4g} {sw.unit}, port {p:.4g} {sw.unit}")

    if "crops" in args.sweeps:
        sw = Sweep("page cost vs crops (vision + prefill + 1 token)", "crop", "s", 1.0, "s", 1.0)
        for k in crops_list:
            point(sw, k, page_fns(ours, port, make_inputs(cfg, k, device, dtype), 1, 1))
        sweeps.append(sw)
    if "batch" in args.sweeps:
        sw = Sweep(f"page cost vs batch ({args.crops} crops each, vision + prefill + 1 token)", "page", "s", 1.0,
                   "s", 1.0)
        step = Sweep(f"decode step vs batch ({caches[0]} cached)", "row", "ms", 1e3, "ms", 1e3)
        x = make_inputs(cfg, args.crops, device, dtype)
        for b in batches:
            point(sw, b, page_fns(ours, port, x, b, 1))
            pair = step_pair(ours, port, caches[0], batch=b)
            point(step, b, pair.fns, pair.setups, args.repeats * args.decode_repeats)
        sweeps += [sw, step]
    if "tokens" in args.sweeps:
        sw = Sweep(f"generation vs tokens (page with {args.crops} crops + n tokens)", "token", "s", 1.0, "ms", 1e3)
        x = make_inputs(cfg, args.crops, device, dtype)
        for n in tokens:
            point(sw, n, page_fns(ours, port, x, 1, n))
        sweeps.append(sw)
    if "cache" in args.sweeps:
        sw = Sweep("decode step vs cached positions", "position", "ms", 1e3, "µs", 1e6)
        kv_bytes = decode_bytes(cfg, [1], dtype)[1][1]  # the cache bytes of one position
        bandwidth = gemv_bandwidth(device, dtype)
        sw.floor_slope = kv_bytes / bandwidth
        sw.floor_note = (f"its keys and values, {kv_bytes / 1e3:.3g} KB, at the measured gemv bandwidth of "
                         f"{bandwidth / 1e9:.1f} GB/s; eval/bench/floor.py")
        for n in caches:
            pair = step_pair(ours, port, n)
            point(sw, n, pair.fns, pair.setups, args.repeats * args.decode_repeats)
        sweeps.append(sw)
    return sweeps


def plot(sweeps: list[Sweep], path: str, max_spread: float, title: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot: skipped (matplotlib is not installed in this environment)"
    cols = min(len(sweeps), 3)
    rows = -(-len(sweeps) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax, sw in zip(axes.flat, sweeps):
        for side, marker, color in zip(SIDES, ("o", "s"), ("C0", "C1")):
            ys = [s.median * sw.scale for s in sw.points[side]]
            errs = [[(s.median - min(s.values)) * sw.scale for s in sw.points[side]],
                    [(max(s.values) - s.median) * sw.scale for s in sw.points[side]]]
            ax.errorbar(sw.xs, ys, yerr=errs, marker=marker, capsize=3, label=side, linestyle="none",
                        color=color)
            fit = slope_of(sw.xs, sw.points[side], max_spread)
            if fit is not None:
                _, intercept, _ = fit_line(list(map(float, sw.xs)), [s.median for s in sw.points[side]])
                xs = [min(sw.xs), max(sw.xs)]
                ax.plot(xs, [(intercept + fit[0] * x) * sw.scale for x in xs], linewidth=1, color=color,
                        label=f"{side} fit: {fit[0] * sw.slope_scale:.3g} {sw.slope_unit}/{sw.x_label}")
        ax.set_xticks(sw.xs)
        gaps = [b - a for a, b in zip(sorted(sw.xs), sorted(sw.xs)[1:])]
        if gaps and min(gaps) < (max(sw.xs) - min(sw.xs)) / 12:  # 600 and 1,000 on a 0-8,000 axis would touch
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_title(sw.name, fontsize=9)
        ax.set_xlabel(f"{sw.x_label}s")
        ax.set_ylabel(sw.unit)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(sweeps):]:
        ax.axis("off")
    fig.suptitle(title + "  (median, bars: min-max; fits only through points that pass the noise rule)",
                 fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v]


def scaling_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ocr2-bench scaling", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", default="official-shallow", choices=list(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-repeats", type=int, default=4, help="decode points time repeats x this many steps")
    parser.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated subset of {','.join(SWEEPS)}")
    parser.add_argument("--crops", type=int, default=2, help="crops per page in the batch and tokens sweeps")
    parser.add_argument("--crops-list", type=_ints, default=_ints("0,1,2,3,4,5,6"))
    parser.add_argument("--batches", type=_ints, default=_ints("1,2,4"))
    parser.add_argument("--tokens", type=_ints, default=_ints("32,128,512"))
    parser.add_argument("--cache-lens", type=_ints, default=_ints("600,1000,2000,4000,8000"))
    parser.add_argument("--max-spread", type=float, default=DEFAULT_MAX_SPREAD)
    parser.add_argument("--plot", default="runs/bench/scaling.png", help="PNG path ('' for none)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    args.sweeps = [s for s in args.sweeps.split(",") if s]
    if set(args.sweeps) - set(SWEEPS):
        parser.error(f"unknown sweeps: {sorted(set(args.sweeps) - set(SWEEPS))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = load_line("at start")
    print(start, flush=True)
    sweeps = measure(args)
    title = (f"ocr2-bench scaling: size={args.size}, {args.device}, {args.dtype}, threads={torch.get_num_threads()}, "
             f"repeats={args.repeats}")
    print(title + "\n")
    for sw in sweeps:
        print("\n".join(format_sweep(sw, args.max_spread)) + "\n")
    if args.device == "cpu":
        print("memory: not measured per point on CPU (a clean peak needs a fresh process; see ocr2-bench's rows)")
    if args.plot:
        print(plot(sweeps, args.plot, args.max_spread, title))
    print(start)
    print(load_line("at end"))


if __name__ == "__main__":
    scaling_main(sys.argv[1:])
