"""The one GPU check (`python -m eval.bench.gpu_readiness`): what CPU tests cannot show, in one run of <= 8 minutes
on one GPU. Needs only torch and ocr2 (the GPU image has neither DeepSpeed nor Hydra). Prints, at the official
widths with random weights (bf16):

1. which attention kernel each path takes (SAM global/windowed attention, the encoder, the decoder), read from the
   CUDA kernel names a profiler records;
2. host syncs per training step (torch.cuda.set_sync_debug_mode("warn") counts every synchronising call);
3. peak memory and step time of a stage-2 training step (vision tokenizer frozen) of one page with 6 crops and a
   512-token answer, activation checkpointing off and on (bf16 weights, torch AdamW: no DeepSpeed on the image, so
   no fp32 master copy: the plan in docs/finetune_memory.md adds that);
4. the encoder forward+backward per attention backend (sdpa, sdpa_split, flex, flash where installed);
5. greedy generation tokens/s for one page;
6. MFU of the training step: FLOPs counted by torch.utils.flop_counter over the measured time, against the GPU's
   dense bf16 peak (`--peak-tflops`, default 989 for an H100/H200 SXM).
Every figure is printed as it is measured, so a run cut short still reports what it reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import warnings

import torch

from ocr2 import OCR2Config, OCR2Model

KERNEL_FAMILIES = (("flash", "flash"), ("fmha", "efficient"), ("efficient", "efficient"), ("cudnn", "cudnn"),
                   ("softmax", "math (softmax kernel)"), ("triton", "triton (flex)"))


def _model(attn: str, checkpointing: bool) -> OCR2Model:
    cfg = dataclasses.replace(OCR2Config.from_preset("official"), attn_implementation=attn)
    with torch.device("cuda"):
        model = OCR2Model(cfg).to(torch.bfloat16)
    model.encoder.gradient_checkpointing = model.decoder.gradient_checkpointing = checkpointing
    if hasattr(model, "set_gradient_checkpointing"):
        model.set_gradient_checkpointing(checkpointing)
    for p in model.vision_tokenizer.parameters():  # stage 2: the vision tokenizer is frozen
        p.requires_grad_(False)
    return model


def _batch(cfg: OCR2Config, crops: int = 6, answer: int = 512) -> dict:
    n_image = cfg.image_token_count(crops)
    prompt = [cfg.bos_token_id] + [cfg.image_token_id] * n_image + [100] * 8
    ids = torch.tensor([prompt + list(range(1000, 1000 + answer))], device="cuda")
    labels = ids.clone()
    labels[:, :len(prompt)] = -100
    g = torch.Generator(device="cuda").manual_seed(0)
    return dict(input_ids=ids, labels=labels, num_crops=[crops],
                global_views=torch.rand((1, 3, cfg.global_view_size, cfg.global_view_size), generator=g,
                                        device="cuda", dtype=torch.bfloat16) * 2 - 1,
                crops=torch.rand((crops, 3, cfg.crop_size, cfg.crop_size), generator=g, device="cuda",
                                 dtype=torch.bfloat16) * 2 - 1)


def _timed(fn, repeats: int = 3) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kernels(model: OCR2Model, batch: dict) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof, torch.no_grad():
        model(**batch)
    names = [e.key.lower() for e in prof.key_averages()]
    found = sorted({label for name in names for key, label in KERNEL_FAMILIES if key in name})
    print(f"[1] attention kernel families seen in a forward: {found or 'none recognised'}")
    for name in sorted(n for n in names if any(k in n for k, _ in KERNEL_FAMILIES))[:12]:
        print(f"      {name[:110]}")


def syncs(model: OCR2Model, batch: dict) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            model(**batch).loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    print(f"[2] host syncs in one training forward+backward: {len(caught)}")
    for w in caught[:5]:
        print(f"      {str(w.message)[:110]} ({w.filename.rsplit('/', 1)[-1]}:{w.lineno})")
    model.zero_grad(set_to_none=True)


def train_step(checkpointing: bool, peak_tflops: float) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = _model("auto", checkpointing)
    batch = _batch(model.config)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)

    def step():
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _timed(step)
    peak = torch.cuda.max_memory_allocated() / 2**30
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    opt.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    mfu = flops / seconds / (peak_tflops * 1e12)
    print(f"[3] stage-2 step, checkpointing {'on ' if checkpointing else 'off'}: {seconds * 1e3:.0f} ms, peak "
          f"{peak:.1f} GiB, {flops / 1e12:.1f} TFLOP -> MFU {mfu:.1%} of {peak_tflops:.0f} TFLOP/s [6]")
    del model, opt


def encoder_backends() -> None:
    for attn in ("sdpa", "sdpa_split", "flex", "flash"):
        try:
            model = _model(attn, False)
            visual = torch.randn((7, 256, model.config.encoder.hidden_size), device="cuda", dtype=torch.bfloat16,
                                 requires_grad=True)

            def run():
                model.encoder(visual, view_size=1024).float().sum().backward()

            print(f"[4] encoder fwd+bwd, 7 views, {attn:>10}: {_timed(run) * 1e3:.1f} ms")
            del model
        except Exception as e:  # a backend missing here (flash-attn not installed) is a line, not a stop
            print(f"[4] encoder {attn}: unavailable ({type(e).__name__}: {str(e)[:80]})")
        torch.cuda.empty_cache()


def generation(new_tokens: int) -> None:
    model = _model("auto", False).eval()
    batch = _batch(model.config, answer=0)
    ids = batch["input_ids"]

    def run():
        model.generate(ids, batch["global_views"], batch["crops"], batch["num_crops"], max_new_tokens=new_tokens,
                       eos_token_id=-1)

    seconds = _timed(run, repeats=2)
    print(f"[5] greedy generation, one page with 6 crops: {new_tokens / seconds:.1f} tokens/s "
          f"({seconds:.2f} s for {new_tokens} tokens, prefill included)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench.gpu_readiness", description=__doc__.splitlines()[0])
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100/H200: 989)")
    p.add_argument("--new-tokens", type=int, default=256)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_readiness: no CUDA device; this check runs on a GPU machine only")
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    model = _model("auto", False)
    batch = _batch(model.config)
    kernels(model, batch)
    syncs(model, batch)
    del model
    for checkpointing in (False, True):
        train_step(checkpointing, args.peak_tflops)
    encoder_backends()
    generation(args.new_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
