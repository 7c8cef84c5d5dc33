"""`ocr2-bench`: ours versus the transformers port, on the same weights and the same inputs.

Builds a random port model (`transformers.models.deepseek_ocr2`) at a named size, maps its weights into an
`OCR2Model` through the explicit key map (`ocr2.keymaps.port`), and times, for both:
  (a) the vision path forward+backward for one page: the global 1024² view plus `--crops` 768² crops
      (SAM tokenizer, DeepEncoder V2, projector);
  (b) a full training step of the whole model: forward with labels, backward, AdamW step;
  (c) greedy generation: `--new-tokens` tokens after a prompt holding the page (vision path and prefill
      included), reported as tokens/s;
  (d) peak memory of each workload: the max RSS of a fresh subprocess per measurement on CPU (the RSS just
      before the workload is shown too, so the workload's own growth can be read off), or
      `torch.cuda.max_memory_allocated` on CUDA.
Every timing is the median of `--repeats` runs after one warm-up, ours and the port interleaved. On CUDA it also
reports MFU for the official shape (training step, `6 x active parameters x tokens`).

    ocr2-bench                      # CPU, fp32, the `small` size, 2 crops
    ocr2-bench --device cuda --dtype bfloat16 --backend flash
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.keymaps import port as port_keys

# Port configs by size. Both keep the official view geometry (the port picks its query table by
# `num_patches <= 144` and uses every row, so views must give exactly 144 / 256 visual tokens).
SIZES = {
    # Seconds per run on 2 CPU cores: every official mechanism, narrow widths.
    "small": dict(
        sam=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, output_channels=32,
                 downsample_channels=[64, 128], global_attn_indexes=[1, 3]),
        encoder=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=256),
        text=dict(vocab_size=1024, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, intermediate_size=384, moe_intermediate_size=64, n_routed_experts=16,
                  n_shared_experts=2, num_experts_per_tok=4, mlp_layer_types=["dense", "sparse", "sparse", "sparse"]),
    ),
    # The released DeepSeek-OCR 2 (3.39 B parameters): for MFU on a GPU.
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

# Dense bf16 peak FLOP/s by device name (tensor cores, no sparsity), for MFU.
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
            "generate": (lambda: generate_ours(new_tokens), lambda: generate_port(new_tokens)),
            "generate_1": (lambda: generate_ours(1), lambda: generate_port(1))}


# ----------------------------------------------------------------------------------------- measurement


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_pair(fns: tuple[Callable, Callable], repeats: int, device) -> tuple[list[float], list[float]]:
    times: tuple[list[float], list[float]] = ([], [])
    for fn in fns:  # warm-up: allocator pools, lazily built tables, kernel selection
        fn()
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - start)
    return times


def _rss_now_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kib() -> int:
    """This process image's peak RSS. VmHWM belongs to the address space, which `exec` replaces; getrusage's
    ru_maxrss survives `exec` and so would report the parent's peak at fork time when that was higher."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def _child(spec: dict) -> None:
    """One peak-memory measurement in a fresh process: build one model, load the saved weights, run the
    workload twice (the second run sees the optimiser state and warmed allocator pools), print JSON."""
    torch.set_num_threads(spec["threads"])
    cfg = ours_config(port_config(spec["size"]), spec["backend"])
    if spec["who"] == "ours":
        model = OCR2Model(cfg)
        model.load_state_dict(torch.load(spec["weights"], weights_only=True), strict=True)
        pair = (model, None)
    else:
        pair = (None, build_port(spec["size"]))
    x = make_inputs(cfg, spec["crops"], "cpu", torch.float32)
    ours_fn, port_fn = _workloads_for_one(pair, x, spec["new_tokens"])[spec["workload"]]
    fn = ours_fn if spec["who"] == "ours" else port_fn
    before = _rss_now_kib()
    fn()
    fn()
    print(json.dumps({"before_kib": before, "peak_kib": _peak_rss_kib()}))


def _workloads_for_one(pair, x: Inputs, new_tokens: int):
    """`workloads` for a process that holds only one of the two models (the other side is never called)."""
    ours, port = pair
    dummy = torch.nn.Linear(1, 1)
    return workloads(ours if ours is not None else dummy, port if port is not None else dummy, x, new_tokens)


def peak_memory_cpu(args, workload: str, weights: str) -> dict[str, tuple[float, float]]:
    out = {}
    for who in ("ours", "port"):
        spec = dict(who=who, workload=workload, size=args.size, backend=args.backend, crops=args.crops,
                    new_tokens=args.new_tokens, weights=weights, threads=torch.get_num_threads())
        res = subprocess.run([sys.executable, "-m", "eval.bench.model", "--child", json.dumps(spec)], check=True,
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        data = json.loads(res.stdout.strip().splitlines()[-1])
        out[who] = (data["peak_kib"] / 1024, (data["peak_kib"] - data["before_kib"]) / 1024)
    return out


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


# ----------------------------------------------------------------------------------------- MFU


def active_param_tokens(cfg: OCR2Config, model: OCR2Model, crops: int, seq_len: int) -> float:
    """sum over modules of (parameters a token actually uses) x (tokens through that module), for one page.

    Vision tokenizer blocks see every 16x16 patch; the neck every patch, each stride-2 conv a quarter of its
    input positions; the encoder [visual ; queries] per view; the projector the kept outputs; the decoder
    every position, with only top-k of the routed experts active per token."""
    views = [cfg.global_view_size] + [cfg.crop_size] * crops
    vt = model.vision_tokenizer
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    total = 0.0
    for size in views:
        patches = (size // cfg.vision.patch_size) ** 2
        total += (n(vt.patch_embed) + n(vt.blocks) + n(vt.neck)) * patches
        for i, name in enumerate(vt.compressor_names):
            total += n(getattr(vt, name)) * patches / 4 ** (i + 1)
        visual = cfg.vision.tokens_for(size)
        total += n(model.encoder.layers) * (visual + cfg.num_queries(size))
        total += n(model.projector) * cfg.view_output_tokens(size)
    d = cfg.decoder
    experts = sum(n(layer.mlp.experts) for layer in model.decoder.layers if hasattr(layer.mlp, "experts"))
    decoder_active = n(model.decoder.layers) - experts * (1 - d.num_experts_per_tok / d.n_routed_experts)
    total += (decoder_active + n(model.lm_head)) * seq_len
    return total


def report_mfu(args, device, dtype) -> list[str]:
    """Training-step MFU of ours and the port at `--mfu-size` (official by default; random weights, one page).

    FLOPs per step = 6 x sum(active parameters x tokens through them) (`active_param_tokens`); attention
    score FLOPs are not counted, as usual for MFU."""
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    peak = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    pcfg = port_config(args.mfu_size)
    cfg = ours_config(pcfg, args.backend)
    x = make_inputs(cfg, args.crops, device, dtype)
    with torch.device("meta"):
        flops_per_step = 6 * active_param_tokens(cfg, OCR2Model(cfg), args.crops, x.input_ids.shape[1])
    port_images = dict(pixel_values=x.global_views, pixel_values_local=x.crops,
                       num_local_patches=x.num_crops if x.crops is not None else None)
    lines = [f"MFU at the {args.mfu_size} shape, {args.dtype}, 1 page + {args.crops} crops, "
             f"{x.input_ids.shape[1]} positions: {flops_per_step / 1e9:.1f} GFLOP per training step"]
    for who in ("ours", "port"):
        with torch.device(device):
            model = OCR2Model(cfg) if who == "ours" else DeepseekOcr2ForConditionalGeneration(pcfg)
        model = model.to(dtype=dtype).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        if who == "ours":
            loss = lambda: model(x.input_ids, x.global_views, x.crops, x.num_crops, labels=x.labels).loss  # noqa
        else:
            loss = lambda: model(input_ids=x.input_ids, labels=x.labels, **port_images).loss  # noqa

        def train_step():
            loss().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        times, _ = time_pair((train_step, lambda: None), args.repeats, device)
        t = statistics.median(times)
        achieved = flops_per_step / t
        mfu = f"MFU {100 * achieved / peak:.1f}%" if peak else "MFU n/a (no bf16 peak known for this device)"
        lines.append(f"  {who}: {t * 1e3:.0f} ms per step, {achieved / 1e12:.3f} TFLOP/s, {mfu}")
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return lines


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--crops", type=int, default=2, help="768² crops besides the global view (0, 2..6)")
    parser.add_argument("--backend", default="auto", help="our attn_implementation (auto, sdpa, sdpa_split, flex, "
                                                          "flash, eager); the port always runs sdpa")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--only", default="encoder,train,generate,memory",
                        help="comma-separated subset of encoder,train,generate,memory,mfu")
    parser.add_argument("--mfu-size", default="official", choices=sorted(SIZES),
                        help="model size for the MFU line (reported on CUDA, or with --only mfu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(json.loads(args.child))
    if args.threads:
        torch.set_num_threads(args.threads)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    only = set(args.only.split(","))
    unknown = only - {"encoder", "train", "generate", "memory", "mfu"}
    if unknown:
        parser.error(f"unknown --only entries: {sorted(unknown)}")
    if device.type == "cuda":
        only.add("mfu")
    if only - {"mfu"}:
        print_table(args, device, dtype, only)
    if "mfu" in only:
        print()
        for line in report_mfu(args, device, dtype):
            print(line)


def print_table(args, device, dtype, only: set[str]) -> None:
    ours, port = build_pair(args.size, args.backend, device, dtype)
    x = make_inputs(ours.config, args.crops, device, dtype)
    fns = workloads(ours, port, x, args.new_tokens)
    print(f"ocr2-bench: size={args.size} ({ours.num_parameters() / 1e6:.2f} M parameters), device={device}, "
          f"dtype={args.dtype}, backend={args.backend}, crops={args.crops}, repeats={args.repeats}, "
          f"threads={torch.get_num_threads()}, torch {torch.__version__}")
    print(f"page: 1 global view + {args.crops} crops, {x.input_ids.shape[1]} decoder positions; "
          f"generation: {args.new_tokens} new tokens\n")

    rows = []
    for name, label in (("encoder", "vision fwd+bwd (s)"), ("train", "train step (s)")):
        if name in only:
            t_ours, t_port = (statistics.median(t) for t in time_pair(fns[name], args.repeats, device))
            rows.append((label, t_ours, t_port, t_port / t_ours))
    if "generate" in only:
        n = args.new_tokens
        t_ours, t_port = (statistics.median(t) for t in time_pair(fns["generate"], args.repeats, device))
        rows.append((f"generate: page + {n} tokens (tokens/s)", n / t_ours, n / t_port, t_port / t_ours))
        # Decoding alone: the same page with 1 new token (vision path + prefill) subtracted.
        p_ours, p_port = (statistics.median(t) for t in time_pair(fns["generate_1"], args.repeats, device))
        d_ours, d_port = (n - 1) / (t_ours - p_ours), (n - 1) / (t_port - p_port)
        rows.append(("  of which decoding (tokens/s)", d_ours, d_port, d_ours / d_port))
        rows.append(("  of which vision + prefill (s)", p_ours, p_port, p_port / p_ours))
    if "memory" in only:
        if device.type == "cuda":
            for name in ("encoder", "train", "generate"):
                m_ours, m_port = peak_memory_cuda(fns[name], device)
                rows.append((f"peak MiB, {name}", m_ours, m_port, m_port / m_ours))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                weights = os.path.join(tmp, "ours.pt")
                torch.save(ours.state_dict(), weights)
                for name in ("encoder", "train", "generate"):
                    mem = peak_memory_cpu(args, name, weights)
                    rows.append((f"peak RSS MiB, {name}", mem["ours"][0], mem["port"][0],
                                 mem["port"][0] / mem["ours"][0]))
                    rows.append((f"  growth MiB, {name}", mem["ours"][1], mem["port"][1],
                                 mem["port"][1] / max(mem["ours"][1], 1e-9)))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ours':>10}  {'port':>10}  {'port/ours':>9}")
    for label, a, b, r in rows:
        print(f"{label:<{width}}  {a:>10.3f}  {b:>10.3f}  {r:>8.2f}x")
    print("\nport/ours: the speedup for times and tokens/s (port time / our time); for memory the port's over "
          "ours (>1: we use less). Peak RSS on CPU is per fresh process (python + torch + transformers included); "
          "growth is the peak minus the RSS just before the workload.")


if __name__ == "__main__":
    main()
