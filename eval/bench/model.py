"""`ocr2-bench`: ours versus the transformers port, on the same weights and the same inputs.

Builds a random port model (`transformers.models.deepseek_ocr2`) at a named size (default `official-shallow`:
the released widths and view geometry, 2 layers per stack), maps its weights into an `OCR2Model` through the
explicit key map (`ocr2.keymaps.port`), and measures, for both:
  (a) the vision path forward+backward for one page: the global 1024² view plus `--crops` 768² crops
      (SAM tokenizer, DeepEncoder V2, projector);
  (b) a full training step of the whole model: forward with labels, backward, AdamW step;
  (c) one decoding step timed directly over a KV cache of each `--cache-lens` length (eval/bench/decode_step.py);
  (d) greedy generation of `--new-tokens` tokens after a prompt holding the page (vision path and prefill included);
  (e) peak memory of (a), (b), (d): the peak RSS of a fresh subprocess per (model, workload) on CPU, and beside
      it (glibc) the peak bytes malloc had handed out, the CPU form of what `torch.cuda.max_memory_allocated`
      gives on CUDA (eval/bench/heap.py).
Every time is the median of `--repeats` runs after one warm-up, ours and the port interleaved (on CPU the training
step runs in one subprocess per side, since both models with their AdamW states do not fit in memory together at
the official widths). Each figure carries its spread (IQR / median); a figure whose spread exceeds
`--max-spread` is printed as `noisy: rerun`. Achieved GFLOP/s (model FLOPs, attention included: eval/bench/flops.py)
are shown against the machine's measured matmul peak (eval/bench/peak.py).

    ocr2-bench                          # CPU, fp32, official-shallow, 2 crops, decode at 600 and 8,000 cached
    ocr2-bench --size small             # the narrow size (seconds per run)
    ocr2-bench scaling                  # cost vs crops, batch, generated tokens, cache length (eval/bench/scaling.py)
    ocr2-bench --device cuda --dtype bfloat16 --size official
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import torch

from eval.bench import flops
from eval.bench.child import spawn
from eval.bench.decode_step import step_pair
from eval.bench.flops import Flops
from eval.bench.floor import decode_floor_lines
from eval.bench.peak import gemv_bandwidth, matmul_peak
from eval.bench.stats import DEFAULT_MAX_SPREAD, NOISY, Progress, Sample, cell, refused
from eval.bench.timing import time_calls
from ocr2 import OCR2Config, OCR2Model
from ocr2.keymaps import port as port_keys

# Port configs by size. Both keep the official view geometry (the port picks its query table by
# `num_patches <= 144` and uses every row, so views must give exactly 144 / 256 visual tokens).
SIZES = {
    # The default: the released widths and view geometry with 2 layers per stack (SAM: 1 windowed + 1 global
    # block; decoder: 1 dense + 1 MoE layer), 653 M parameters (the 129,280-token embedding and head are half),
    # minutes per run on 2 CPU cores. Per-layer costs and their mix are the official model's.
    "official-shallow": dict(
        sam=dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, output_channels=256,
                 downsample_channels=[512, 896], global_attn_indexes=[1]),
        encoder=dict(hidden_size=896, num_hidden_layers=2, num_attention_heads=14, num_key_value_heads=2,
                     intermediate_size=4864),
        text=dict(vocab_size=129_280, hidden_size=1280, num_hidden_layers=2, num_attention_heads=10,
                  num_key_value_heads=10, intermediate_size=6848, moe_intermediate_size=896, n_routed_experts=64,
                  n_shared_experts=2, num_experts_per_tok=6, mlp_layer_types=["dense", "sparse"]),
    ),
    # Seconds per run on 2 CPU cores: every official mechanism, narrow widths (SAM's global attention is 64-69%
    # of its FLOPs here, against 11-13% at the official widths: ratios measured here do not carry over).
    "small": dict(
        sam=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, output_channels=32,
                 downsample_channels=[64, 128], global_attn_indexes=[1, 3]),
        encoder=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=256),
        text=dict(vocab_size=1024, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, intermediate_size=384, moe_intermediate_size=64, n_routed_experts=16,
                  n_shared_experts=2, num_experts_per_tok=4, mlp_layer_types=["dense", "sparse", "sparse", "sparse"]),
    ),
    # The released DeepSeek-OCR 2 (3.39 B parameters): for a GPU.
    "official": dict(
        sam=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, output_channels=256,
                 downsample_channels=[512, 896], global_attn_indexes=[2, 5, 8, 11]),
        encoder=dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                     intermediate_size=4864),
        text=dict(vocab_size=129_280, hidden_size=1280, num_hidden_layers=12, num_attention_heads=10,
                  num_key_value_heads=10, intermediate_size=6848, moe_intermediate_size=896, n_routed_experts=64,
                  n_shared_experts=2, num_experts_per_tok=6, mlp_layer_types=["dense"] + ["sparse"] * 11),
    ),
    # For a smoke run of this script (well under a second per workload).
    "tiny": dict(
        sam=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, output_channels=16,
                 downsample_channels=[24, 48], global_attn_indexes=[1]),
        encoder=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=96),
        text=dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  intermediate_size=160, moe_intermediate_size=24, n_routed_experts=8, n_shared_experts=2,
                  num_experts_per_tok=2, mlp_layer_types=["dense", "sparse"]),
    ),
}
IMAGE_TOKEN_ID = 5
TEXT_TOKENS = 64  # prompt text after the image, and the labelled answer in the training step

# Datasheet dense bf16 peak FLOP/s by device name (tensor cores, no sparsity), for MFU on a GPU.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12, "L40S": 362e12,
             "B200": 2250e12}


# ----------------------------------------------------------------------------------------- models


def port_config(size: str, attn: str = "sdpa"):
    from transformers.models.deepseek_ocr2 import DeepseekOcr2Config

    s = SIZES[size]
    cfg = DeepseekOcr2Config(
        vision_config={
            "sam_config": dict(image_size=1024, patch_size=16, window_size=14, **s["sam"]),
            "encoder_config": dict(vocab_size=32, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                                   **s["encoder"]),
        },
        text_config=dict(max_position_embeddings=8192, bos_token_id=0, eos_token_id=1, pad_token_id=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4}, **s["text"]),
        image_token_id=IMAGE_TOKEN_ID,
    )
    cfg._attn_implementation = attn
    for sub in (cfg.vision_config, cfg.vision_config.sam_config, cfg.vision_config.encoder_config, cfg.text_config):
        sub._attn_implementation = attn
    return cfg


def build_port(size: str, seed: int = 0):
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    torch.manual_seed(seed)
    model = DeepseekOcr2ForConditionalGeneration(port_config(size))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the port zero-initialises rel-pos tables, pos_embed and biases: make them count
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") and p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model


def ours_config(port_cfg, backend: str) -> OCR2Config:
    cfg = port_keys.config_from_port(port_cfg.to_dict())
    return dataclasses.replace(cfg, attn_implementation=backend, bos_token_id=0, eos_token_id=1, pad_token_id=2)


def ours_state(port_model) -> dict[str, torch.Tensor]:
    state = port_model.state_dict()
    unexpected: list[str] = []
    converted = dict(port_keys.convert(list(state), state.__getitem__, unexpected))
    if unexpected:
        raise RuntimeError(f"port keys with no counterpart: {unexpected}")
    return converted


def build_pair(size: str, backend: str, device, dtype):
    port = build_port(size)
    ours = OCR2Model(ours_config(port.config, backend))
    ours.load_state_dict(ours_state(port), strict=True)
    return ours.to(device=device, dtype=dtype), port.to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------- inputs and workloads


@dataclasses.dataclass
class Inputs:
    global_views: torch.Tensor
    crops: torch.Tensor | None
    num_crops: list[int]
    input_ids: torch.Tensor
    labels: torch.Tensor


def make_inputs(cfg: OCR2Config, crops: int, device, dtype, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    glob = torch.rand(1, 3, cfg.global_view_size, cfg.global_view_size, generator=g) * 2 - 1
    loc = torch.rand(crops, 3, cfg.crop_size, cfg.crop_size, generator=g) * 2 - 1 if crops else None
    n_img = cfg.image_token_count(crops)
    text = torch.randint(10, cfg.decoder.vocab_size, (TEXT_TOKENS,), generator=g)
    ids = torch.cat([torch.tensor([cfg.bos_token_id]), torch.full((n_img,), IMAGE_TOKEN_ID), text])[None]
    labels = ids.clone()
    labels[:, : 1 + n_img] = -100
    to = dict(device=device, dtype=dtype)
    return Inputs(glob.to(**to), None if loc is None else loc.to(**to), [crops], ids.to(device), labels.to(device))


def workloads(ours: OCR2Model, port, x: Inputs, new_tokens: int) -> dict[str, tuple[Callable, Callable]]:
    """name -> (ours, port) callables; each runs one complete unit of the workload."""
    port_images = dict(pixel_values=x.global_views, pixel_values_local=x.crops,
                       num_local_patches=x.num_crops if x.crops is not None else None)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-5)
    opt_port = torch.optim.AdamW(port.parameters(), lr=1e-5)

    def encoder_ours():
        ours.train()
        ours.image_embeddings(x.global_views, x.crops, x.num_crops).float().square().mean().backward()
        ours.zero_grad(set_to_none=True)

    def encoder_port():
        port.train()
        feats = port.model.get_image_features(**port_images).pooler_output
        torch.cat(feats).float().square().mean().backward()
        port.zero_grad(set_to_none=True)

    def train_ours():
        ours.train()
        ours(x.input_ids, x.global_views, x.crops, x.num_crops, labels=x.labels).loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def train_port():
        port.train()
        port(input_ids=x.input_ids, labels=x.labels, **port_images).loss.backward()
        opt_port.step()
        opt_port.zero_grad(set_to_none=True)

    prompt = x.input_ids[:, : -TEXT_TOKENS // 2]  # the page and some text; the rest is generated

    def generate_ours(n: int):
        ours.eval()
        out = ours.generate(prompt, x.global_views, x.crops, x.num_crops, max_new_tokens=n, eos_token_id=-1)
        assert out.shape[1] == n

    def generate_port(n: int):
        port.eval()
        with torch.no_grad():  # EOS can occur in random models: min_new_tokens masks it (ours: an impossible id)
            out = port.generate(input_ids=prompt, **port_images, max_new_tokens=n, min_new_tokens=n,
                                do_sample=False, eos_token_id=1, pad_token_id=2)
        assert out.shape[1] - prompt.shape[1] == n

    return {"encoder": (encoder_ours, encoder_port), "train": (train_ours, train_port),
            "generate": (lambda: generate_ours(new_tokens), lambda: generate_port(new_tokens))}


# ----------------------------------------------------------------------------------------- rows


@dataclasses.dataclass
class Row:
    """One measure for both sides. `ours`/`port` hold repeats (seconds, or one value for memory and counts);
    `scale` converts seconds to the unit shown; `flops` (model FLOPs per call) gives the GFLOP/s columns."""

    label: str
    ours: Sample
    port: Sample
    scale: float = 1.0
    flops: Flops | None = None
    kind: str = "time"  # time | memory | count
    note: str = ""


def ratio_cell(row: Row, max_spread: float) -> str:
    o, p = row.ours, row.port
    if not (math.isfinite(o.median) and math.isfinite(p.median)) and row.kind != "time":
        return "n/a"
    if refused(o.median, o.spread, max_spread) or refused(p.median, p.spread, max_spread) or o.median <= 0:
        return NOISY
    r = p.median / o.median
    return NOISY if refused(r) else f"{r:.2f}x"


def rate_cell(flops: Flops | None, s: Sample, peak: float, max_spread: float) -> str:
    if flops is None:
        return ""
    if refused(s.median, s.spread, max_spread) or s.median <= 0:
        return NOISY
    rate = flops.total / s.median
    return f"{rate / 1e9:.3g} ({100 * rate / peak:.2g}%)"


def format_table(rows: list[Row], peak: float, max_spread: float) -> list[str]:
    head = ["measure", "ours", "spread", "port", "spread", "port/ours", "ours GFLOP/s (% peak)",
            "port GFLOP/s (% peak)"]
    body = []
    for r in rows:
        vals = []
        for s in (r.ours, r.port):
            if r.kind == "time":
                vals += [cell(s.median * r.scale, s.spread, max_spread), f"{100 * s.spread:.0f}%"]
            elif not math.isfinite(s.median):  # not measured for this side (e.g. no counter for it)
                vals += ["n/a", "-"]
            else:
                vals += [cell(s.median * r.scale, fmt="{:.0f}" if r.kind == "count" else "{:.1f}"), "-"]
        body.append([r.label + (f" [{r.note}]" if r.note else ""), *vals, ratio_cell(r, max_spread),
                     rate_cell(r.flops, r.ours, peak, max_spread), rate_cell(r.flops, r.port, peak, max_spread)])
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    fmt = lambda line: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(line, widths)))
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(line) for line in body]


# ----------------------------------------------------------------------------------------- measurement


def peak_memory_cuda(fns: tuple[Callable, Callable], device) -> tuple[float, float]:
    peaks = []
    for fn in fns:
        fn()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) / 2**20)
    return peaks[0], peaks[1]


def child_runs(args, workload: str, repeats: int, progress: Progress) -> dict[str, dict]:
    """Both sides of `workload`, one fresh process each (eval/bench/child.py), one after the other."""
    out = {}
    for who in ("ours", "port"):
        spec = dict(who=who, workload=workload, size=args.size, backend=args.backend, crops=args.crops,
                    new_tokens=args.new_tokens, threads=torch.get_num_threads(), repeats=repeats, dtype=args.dtype)
        out[who] = r = spawn(spec)
        times = ", ".join(f"{t:.3g}" for t in r["times"])
        progress.step(f"{who} {workload} in a fresh process: times [{times}] s, peak RSS {r['peak_kib'] / 1024:.0f} MiB")
    return out


def _partial(row: Row) -> str:
    """A finished row for the progress log, so that a run cut short still shows what it measured."""
    o, p = row.ours, row.port
    return (f"{row.label}: ours {o.median * row.scale:.4g} (spread {o.spread:.0%}), port {p.median * row.scale:.4g} "
            f"(spread {p.spread:.0%})")


def model_flops(cfg: OCR2Config, x: Inputs, args) -> dict[str, Flops]:
    with torch.device("meta"):  # shapes only
        shape = OCR2Model(cfg)
    positions, labelled = x.input_ids.shape[1], TEXT_TOKENS
    prompt = positions - TEXT_TOKENS // 2
    out = {"encoder": 3 * flops.vision_forward(cfg, shape, args.crops),
           "train": flops.train_step(cfg, shape, args.crops, positions, labelled),
           "generate": flops.generate(cfg, shape, args.crops, prompt, args.new_tokens)}
    for n in args.cache_lens:
        out[f"decode_{n}"] = flops.decode_step(cfg, shape, n)
    return out


def decode_bytes(cfg: OCR2Config, cache_lens: list[int], dtype) -> dict[int, tuple[float, float]]:
    """{cached positions: (weight bytes, KV-cache bytes)} one batch-1 decode step reads (eval/bench/floor.py)."""
    with torch.device("meta"):
        shape = OCR2Model(cfg)
    size = torch.empty(0, dtype=dtype).element_size()
    return {n: flops.decode_step_bytes(cfg, shape, n, size) for n in cache_lens}


def decode_ops_rows(ours, cache_len: int) -> list[Row]:
    """ATen calls per decoded token (nested, as torch.profiler records them), by the counter of
    eval/bench/decode_ops.py. It drives our `greedy_decode` only, so the port's column reads n/a."""
    from eval.bench import decode_ops

    count = decode_ops.count_decode_ops(ours, cache_len=cache_len)
    return [Row(f"ops per decoded token, {cache_len} cached (ATen calls)", Sample([count.total]),
                Sample([math.nan]), kind="count")]


def measure(args, device, dtype, only: set[str]) -> tuple[list[Row], dict]:
    n_children = 2 * ("train" in only and device.type == "cpu") + 4 * ("memory" in only and device.type == "cpu")
    n_main = sum(k in only for k in ("encoder", "generate")) + len(args.cache_lens) * ("decode" in only)
    n_main += ("train" in only and device.type == "cuda") + 3 * ("memory" in only and device.type == "cuda")
    progress = Progress(n_children + n_main + ("ops" in only))
    rows: list[Row] = []
    info: dict = {}
    children: dict[str, dict] = {}
    ours, port = build_pair(args.size, args.backend, device, dtype)
    cfg = ours.config
    x = make_inputs(cfg, args.crops, device, dtype)
    fl = model_flops(cfg, x, args)
    info.update(params=ours.num_parameters(), positions=x.input_ids.shape[1], flops=fl,
                decode_bytes=decode_bytes(cfg, args.cache_lens, dtype))
    fns = workloads(ours, port, x, args.new_tokens)

    def timed(name: str, label: str, scale: float = 1.0, note: str = "") -> None:
        t_ours, t_port = time_calls(fns[name], args.repeats, device)
        rows.append(Row(label, Sample(t_ours), Sample(t_port), scale, fl[name], note=note))
        progress.step(_partial(rows[-1]))

    if "encoder" in only:
        timed("encoder", "vision fwd+bwd (s)")
    if "train" in only and device.type == "cuda":
        timed("train", "train step (s)")
    if "decode" in only:
        for n in args.cache_lens:
            pair = step_pair(ours, port, n)
            t_ours, t_port = time_calls(pair.fns, args.repeats * args.decode_repeats, device, pair.setups)
            label = f"decode step, {n} cached (ms)"
            rows.append(Row(label, Sample(t_ours), Sample(t_port), 1e3, fl[f"decode_{n}"]))
            del pair
            progress.step(_partial(rows[-1]))
    if "generate" in only:
        timed("generate", f"generate: page + {args.new_tokens} tokens (s)")
    if "ops" in only:
        rows += decode_ops_rows(ours, args.cache_lens[0])
        progress.step(f"ops per decoded token (ours): {rows[-1].ours.median:.0f}")
    del fns
    if device.type == "cpu":
        # The subprocesses last, once this process has dropped both models (memory: see child.py).
        del ours, port
        gc.collect()
        if "train" in only:
            children["train"] = child_runs(args, "train", args.repeats, progress)
            c = children["train"]
            rows.insert(1 if "encoder" in only else 0,
                        Row("train step (s)", Sample(c["ours"]["times"]), Sample(c["port"]["times"]), 1.0,
                            fl["train"], note="one process per side, not interleaved"))
            print(f"  {_partial(rows[1 if 'encoder' in only else 0])}", file=sys.stderr, flush=True)
        if "memory" in only:
            for name in ("encoder", "generate"):
                children[name] = child_runs(args, name, 1, progress)
    if "memory" in only or ("train" in only and device.type == "cpu"):
        names = ("encoder", "train", "generate")
        labels = dict(encoder="vision fwd+bwd", train="train step", generate="generate")
        for name in names:
            if device.type == "cuda":
                if "memory" in only:
                    m_ours, m_port = peak_memory_cuda(workloads(ours, port, x, args.new_tokens)[name], device)
                    rows.append(Row(f"peak MiB, {labels[name]}", Sample([m_ours]), Sample([m_port]), kind="memory"))
                    progress.step(f"peak memory, {name}")
            elif name in children:
                c = children[name]
                mib = lambda who, key: c[who][key] / 1024  # noqa: E731
                rows.append(Row(f"peak RSS MiB, {labels[name]}", Sample([mib("ours", "peak_kib")]),
                                Sample([mib("port", "peak_kib")]), kind="memory"))
                rows.append(Row("  growth over the loaded model (MiB)",
                                Sample([mib("ours", "peak_kib") - mib("ours", "before_kib")]),
                                Sample([mib("port", "peak_kib") - mib("port", "before_kib")]), kind="memory"))
                if all("heap_peak_kib" in c[who] for who in ("ours", "port")):  # glibc (eval/bench/heap.py)
                    rows.append(Row(f"peak heap in use MiB, {labels[name]}", Sample([mib("ours", "heap_peak_kib")]),
                                    Sample([mib("port", "heap_peak_kib")]), kind="memory",
                                    note="live tensors, without malloc's reserve"))
                    rows.append(Row("  growth over the loaded model (MiB)",
                                    Sample([mib("ours", "heap_peak_kib") - mib("ours", "heap_before_kib")]),
                                    Sample([mib("port", "heap_peak_kib") - mib("port", "heap_before_kib")]),
                                    kind="memory"))
    return rows, info


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["scaling"]:
        from eval.bench.scaling import scaling_main

        return scaling_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-repeats", type=int, default=4,
                        help="decode steps are short: time repeats x this many of them")
    parser.add_argument("--crops", type=int, default=2, help="768² crops besides the global view (0, 2..6)")
    parser.add_argument("--backend", default="auto", help="our attn_implementation (auto, sdpa, sdpa_split, flex, "
                                                          "flash, eager); the port always runs sdpa")
    parser.add_argument("--size", default="official-shallow", choices=list(SIZES))
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--cache-lens", default="600,8000", help="cached positions for the decode-step rows")
    parser.add_argument("--max-spread", type=float, default=DEFAULT_MAX_SPREAD,
                        help="largest IQR/median a figure may have before it is printed as 'noisy: rerun'")
    parser.add_argument("--only", default="encoder,train,decode,generate,ops,memory",
                        help="comma-separated subset of encoder,train,decode,generate,ops,memory")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write every row's raw repeats here (refused ones too)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.cache_lens = [int(n) for n in args.cache_lens.split(",") if n]
    only = set(args.only.split(","))
    unknown = only - {"encoder", "train", "decode", "generate", "ops", "memory"}
    if unknown:
        parser.error(f"unknown --only entries: {sorted(unknown)}")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    for line in run(args, device, dtype, only):
        print(line)


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min; {os.cpu_count()} CPUs)"


def run(args, device, dtype, only: set[str]) -> list[str]:
    """Measure and return the report's lines (the load average is printed as the run starts, too)."""
    start_load = load_line("at start")
    commit = git_commit()  # at the start: other work may commit while this runs (subprocesses import later)
    print(start_load, flush=True)
    peak = matmul_peak(device, dtype)
    bandwidth = gemv_bandwidth(device, dtype)
    rows, info = measure(args, device, dtype, only)
    if getattr(args, "json", None):
        raw = {"args": {k: v for k, v in vars(args).items()}, "peak_flops": peak, "gemv_bytes_per_s": bandwidth,
               "decode_bytes": {n: dict(weights=w, cache=c) for n, (w, c) in info["decode_bytes"].items()},
               "commit": commit,
               "load_start": start_load, "load_end": load_line("at end"),
               "flops": {k: dataclasses.asdict(f) for k, f in info["flops"].items()},
               "rows": [dict(label=r.label, kind=r.kind, scale=r.scale, ours=r.ours.values, port=r.port.values,
                             flops=r.flops.total if r.flops else None) for r in rows]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1, default=str))
    lines = [f"ocr2-bench: size={args.size} ({info['params'] / 1e6:.1f} M parameters), device={device}, "
             f"dtype={args.dtype}, backend={args.backend}, crops={args.crops}, repeats={args.repeats}, "
             f"threads={torch.get_num_threads()}, torch {torch.__version__}, commit {commit} at the start",
             f"page: 1 global view + {args.crops} crops, {info['positions']} decoder positions; generation: "
             f"{args.new_tokens} new tokens; decode steps over {', '.join(map(str, args.cache_lens))} cached positions",
             f"measured matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.dtype} torch.mm, {torch.get_num_threads()} "
             f"threads, best of 5)" + _datasheet(device),
             f"measured gemv bandwidth: {bandwidth / 1e9:.1f} GB/s ({args.dtype} torch.mv over a 512 MiB matrix, "
             f"best of 5)", ""]
    lines += format_table(rows, peak, args.max_spread)
    lines += ["", "model FLOPs per call (attention = QK^T + PV, counted; eval/bench/flops.py):"]
    names = {"encoder": "vision fwd+bwd", "train": "train step", "generate": "generate"}
    for key, f in info["flops"].items():
        name = names.get(key, key.replace("decode_", "decode step, ") + " cached")
        lines.append(f"  {name}: {f.total / 1e9:.4g} GFLOP, attention {100 * f.attention / f.total:.1f}%")
    if "decode" in only:
        lines += ["", *decode_floor_lines(rows, info["decode_bytes"], bandwidth, args.max_spread)]
    notes = (f"spread: IQR / median over the repeats; above {args.max_spread:.0%} (or a negative derived figure) "
             "a figure reads 'noisy: rerun'. port/ours: the speedup for times (port time / ours); for memory the "
             "port's over ours (>1: we use less). Peak RSS on CPU is per fresh process (python + torch + "
             "transformers included); growth is the peak minus the RSS just before the workload.")
    lines += ["", *textwrap.wrap(notes, 116), start_load, load_line("at end")]
    return lines


def _datasheet(device) -> str:
    if device.type != "cuda":
        return ""
    name = torch.cuda.get_device_name(device)
    nominal = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return f"; datasheet dense bf16 peak of {name}: {nominal / 1e12:.0f} TFLOP/s" if nominal else ""


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parents[2], timeout=10).stdout.strip()
        return out.stdout.strip() + ("+local changes" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
