"""The one GPU check (`python -m eval.bench.gpu_readiness`): what CPU tests cannot show, in one run of <= 8 minutes
on one GPU. Needs only torch and ocr2 (the GPU image has neither DeepSpeed nor Hydra). Prints, at the official
widths with random weights (bf16):

1. which attention kernel each path takes (SAM global/windowed attention, the encoder, the decoder), read from the
   kernel names a profiler records, per module (record_function around the tokenizer, encoder and decoder);
2. host syncs per training step (torch.cuda.set_sync_debug_mode("warn") turns every synchronising call into a
   warning; they are counted, with where they come from);
3. peak memory and step time of a stage-2 training step (vision tokenizer frozen) of one page with 6 crops and a
   512-token answer, activation checkpointing off and on (bf16 weights, torch AdamW: no DeepSpeed on the image, so
   no fp32 master copy: the plan in docs/finetune_memory.md adds that);
4. the encoder forward+backward per attention backend (sdpa, sdpa_split, flex, flash where installed);
5. greedy generation of one page: tokens/s end to end (prefill included), and decode tokens/s at batch 1 and 16
   (the time of N new tokens less the time of 1, so prefill is left out);
6. MFU of the training step: FLOPs counted by torch.utils.flop_counter over the measured time, against the GPU's
   dense bf16 peak (`--peak-tflops`, default 989 for an H100/H200 SXM).
Every figure is printed as it is measured, so a run cut short still reports what it reached.

`--dry-run` runs every section on the CPU with the tiny preset at small views, in fp32 (what CUDA alone can show
is printed as "n/a on CPU"): the script's own test (tests/test_gpu_readiness.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
import warnings
from dataclasses import dataclass

import torch

from ocr2 import OCR2Config, OCR2Model

# The aten ops SDPA dispatches to (recorded on the host inside each module's range, so they say which kernel each
# path chose) and the other attention entry points ocr2 calls.
ATTENTION_OPS = (("_scaled_dot_product_flash_attention", "sdpa flash"),
                 ("_scaled_dot_product_efficient_attention", "sdpa efficient"),
                 ("_scaled_dot_product_cudnn_attention", "sdpa cudnn"),
                 ("_scaled_dot_product_attention_math", "sdpa math"),
                 ("_scaled_dot_product_fused_attention_overrideable", "sdpa overrideable"),
                 ("flash_attn", "flash-attn"), ("flex_attention", "flex"))
# Device kernel names of the same families, listed once for the whole forward (a kernel runs after its launch, so
# it cannot be placed inside a host range).
KERNEL_KEYS = ("flash", "fmha", "attention", "attn")
PATHS = ("vision_tokenizer", "encoder", "decoder")


@dataclass(frozen=True)
class Run:
    config: OCR2Config
    device: torch.device
    dtype: torch.dtype

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def official_run() -> Run:
    return Run(OCR2Config.from_preset("official"), torch.device("cuda"), torch.bfloat16)


def dry_run() -> Run:
    """The tiny preset at 256² global views and 192² crops (16 and 9 tokens a view), fp32 on the CPU."""
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, global_view_size=256, crop_size=192,
                              encoder=dataclasses.replace(cfg.encoder, query_view_sizes=(192, 256)))
    return Run(cfg, torch.device("cpu"), torch.float32)


def _model(run: Run, attn: str, checkpointing: bool) -> OCR2Model:
    cfg = dataclasses.replace(run.config, attn_implementation=attn)
    with torch.device(run.device):
        model = OCR2Model(cfg).to(run.dtype)
    model.set_gradient_checkpointing(checkpointing)
    for p in model.vision_tokenizer.parameters():  # stage 2: the vision tokenizer is frozen
        p.requires_grad_(False)
    return model


def _page(run: Run, crops: int = 6, answer: int = 512, batch: int = 1) -> dict:
    cfg = run.config
    n_image = cfg.image_token_count(crops)
    prompt = [cfg.bos_token_id] + [cfg.image_token_id] * n_image + [10] * 8
    text = [11 + i % (cfg.decoder.vocab_size - 12) for i in range(answer)]
    ids = torch.tensor([prompt + text] * batch, device=run.device)
    labels = ids.clone()
    labels[:, :len(prompt)] = -100
    g = torch.Generator(device=run.device).manual_seed(0)

    def views(n: int, size: int) -> torch.Tensor:
        return torch.rand((n, 3, size, size), generator=g, device=run.device, dtype=run.dtype) * 2 - 1

    return dict(input_ids=ids, labels=labels, num_crops=[crops] * batch,
                global_views=views(batch, cfg.global_view_size), crops=views(crops * batch, cfg.crop_size))


def _timed(run: Run, fn, repeats: int = 3) -> float:
    fn()
    run.sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        run.sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kernels(run: Run, model: OCR2Model, batch: dict) -> None:
    """[1] The attention kernels of each path: events inside each module's record_function range."""
    from torch.profiler import ProfilerActivity, profile, record_function

    handles = []
    for name in PATHS:  # a profiler range around each path's forward
        module = getattr(model, name)
        ranges = {}

        def enter(mod, args, name=name, ranges=ranges):
            ranges[name] = record_function(f"path::{name}")
            ranges[name].__enter__()

        def leave(mod, args, out, name=name, ranges=ranges):
            ranges.pop(name).__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.cuda else [])
    try:
        with profile(activities=activities) as prof, torch.no_grad():
            model(**batch)
    finally:
        for h in handles:
            h.remove()
    events = prof.events()
    for name in PATHS:
        spans = [(e.time_range.start, e.time_range.end) for e in events if e.name == f"path::{name}"]
        ops = sorted({e.name for e in events if any(s <= e.time_range.start <= t for s, t in spans)
                      and any(key in e.name for key, _ in ATTENTION_OPS)})
        families = sorted({label for op in ops for key, label in ATTENTION_OPS if key in op})
        print(f"[1] attention, {name}: {families or 'no SDPA / flash-attn / flex op (ocr2 own kernel or eager)'}")
        for op in ops[:6]:
            print(f"      {op[:110]}")
    if run.cuda:
        device_kernels = sorted({e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA
                                 and any(k in e.name.lower() for k in KERNEL_KEYS)})
        print(f"[1] attention-like CUDA kernels in the forward ({len(device_kernels)}):")
        for kernel in device_kernels[:12]:
            print(f"      {kernel[:110]}")


def syncs(run: Run, model: OCR2Model, batch: dict) -> None:
    """[2] Synchronising calls in one training forward+backward."""
    if not run.cuda:
        print("[2] host syncs in one training forward+backward: n/a on CPU (tests/test_host_syncs.py counts the ops)")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            model(**batch).loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    print(f"[2] host syncs in one training forward+backward: {len(caught)}")
    for w in caught[:8]:
        print(f"      {str(w.message)[:100]} ({w.filename.rsplit('/', 1)[-1]}:{w.lineno})")
    model.zero_grad(set_to_none=True)


@contextlib.contextmanager
def dense_causal_bias(run: Run):
    """For the FLOP count only: torch's CausalBias (the split encoder's lower-right causal query call on CUDA)
    cannot be created under a TorchDispatchMode such as FlopCounterMode ("Creating a new Tensor subclass CausalBias
    but the raw Tensor object is already associated..."), so that call takes the same rule as the dense boolean
    mask the encoder uses off CUDA. SDPA's FLOP formula does not depend on the mask: the count is the same."""
    from ocr2.modeling import attention

    original = attention._lower_right_causal
    attention._lower_right_causal = attention.lower_right_causal_mask
    try:
        yield
    finally:
        attention._lower_right_causal = original


def train_step(run: Run, checkpointing: bool, peak_tflops: float) -> None:
    """[3] step time and peak memory of a stage-2 step, [6] its MFU."""
    from torch.utils.flop_counter import FlopCounterMode

    if run.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = _model(run, "auto", checkpointing)
    batch = _page(run)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=run.cuda)

    def step():
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _timed(run, step)
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if run.cuda else "n/a on CPU"
    with dense_causal_bias(run), FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    opt.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    mfu = flops / seconds / (peak_tflops * 1e12)
    print(f"[3] stage-2 step, checkpointing {'on ' if checkpointing else 'off'}: {seconds * 1e3:.0f} ms, peak "
          f"{peak}, {flops / 1e12:.3f} TFLOP -> [6] MFU {mfu:.1%} of {peak_tflops:.0f} TFLOP/s")
    del model, opt


def encoder_backends(run: Run) -> None:
    """[4] DeepEncoder V2 alone, forward+backward over 7 global-size views, per attention backend."""
    from ocr2.modeling.encoder import DeepEncoderV2

    cfg = run.config
    size = cfg.global_view_size
    tokens = (size // 64) ** 2  # the tokenizer's output per view
    counts = {s: cfg.num_queries(s) for s in cfg.encoder.query_view_sizes}
    for attn in ("sdpa", "sdpa_split", "flex", "flash"):
        try:
            with torch.device(run.device):
                encoder = DeepEncoderV2(cfg.encoder, counts, attn).to(run.dtype)
            visual = torch.randn((7, tokens, cfg.encoder.hidden_size), device=run.device, dtype=run.dtype,
                                 requires_grad=True)

            def fwd_bwd():
                encoder(visual, view_size=size).float().sum().backward()

            print(f"[4] encoder fwd+bwd, 7 views, {attn:>10}: {_timed(run, fwd_bwd) * 1e3:.1f} ms")
            del encoder
        except Exception as e:  # a backend missing here (flash-attn not installed) is a line, not a stop
            print(f"[4] encoder {attn}: unavailable ({type(e).__name__}: {str(e)[:80]})")
        if run.cuda:
            torch.cuda.empty_cache()


def generation(run: Run, new_tokens: int) -> None:
    """[5] Greedy decoding of one page (end to end), and decode-only tokens/s at batch 1 and 16."""
    model = _model(run, "auto", False).eval()

    def seconds(batch: int, n: int) -> float:
        page = _page(run, answer=0, batch=batch)

        def go():
            with torch.no_grad():
                model.generate(page["input_ids"], page["global_views"], page["crops"], page["num_crops"],
                               max_new_tokens=n, eos_token_id=-1)

        return _timed(run, go, repeats=2)

    whole = seconds(1, new_tokens)
    print(f"[5] greedy generation, one page with 6 crops: {new_tokens / whole:.1f} tokens/s "
          f"({whole:.2f} s for {new_tokens} tokens, prefill included)")
    for batch in (1, 16):
        first = seconds(batch, 1)  # prefill and the first token
        total = whole if batch == 1 else seconds(batch, new_tokens)
        rate = batch * (new_tokens - 1) / max(total - first, 1e-9)
        print(f"[5] decode, batch {batch:>2}: {rate:.1f} tokens/s ({rate / batch:.1f} per sequence; prefill "
              f"{first:.2f} s left out)")
    del model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench.gpu_readiness", description=__doc__.splitlines()[0])
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100/H200: 989)")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--dry-run", action="store_true",
                   help="every section on the CPU with a tiny model (checks the script, measures nothing)")
    args = p.parse_args(argv)
    if args.dry_run:
        run = dry_run()
        print(f"dry run on CPU (tiny preset, fp32): no figure below is a measurement, torch {torch.__version__}")
    elif not torch.cuda.is_available():
        print("gpu_readiness: no CUDA device; this check runs on a GPU machine only (--dry-run checks it on CPU)")
        return 2
    else:
        run = official_run()
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    start = time.perf_counter()
    model = _model(run, "auto", False)
    batch = _page(run)
    kernels(run, model, batch)
    syncs(run, model, batch)
    del model
    for checkpointing in (False, True):
        train_step(run, checkpointing, args.peak_tflops)
    encoder_backends(run)
    generation(run, args.new_tokens)
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
