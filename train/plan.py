"""ocr2-plan: how much GPU memory a fine-tuning run needs, per GPU, before renting one.

    ocr2-plan                                   # official size, every mode / stage / ZeRO / GPU count
    ocr2-plan --mode lora --zero 1,2 --gpus 1 --checkpointing on --seq-len 2048
    ocr2-plan --mode lora --zero 2 --gpus 1 --answer-tokens 256,1024,2048   # labelled (answer) positions
    ocr2-plan --model runs/my_run/model         # a config.json written by ocr2 (OCR2Config.save)

Prints markdown: the parameter counts, activations per decoder token, per answer token and per view, and one row
per setup with weights, gradients, optimizer states, activations, logits/loss (over the answer tokens: the head
and loss run on labelled positions only), buffers, the step's transient, the peak, and whether it fits on
16 / 24 / 40 / 80 GB. The figures come from train/memory_plan.py (assumptions listed there and
printed below the table)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

from ocr2.config import OCR2Config
from train import activation_bytes as ab
from train.memory_plan import (BF16, STAGES, GiB, DeepSpeedSizes, Setup, answer_positions, encoder_attention_form,
                               plan, trains_for)

CAPACITIES = (16, 24, 40, 80)  # GB on the box; treated as GiB of device memory


def _list(kind, choices=None):
    def parse(text: str):
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one value")
        if choices is not None and any(x not in choices for x in items):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(map(str, choices))}")
        return items
    return parse


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off")
    return text == "on"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocr2-plan", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", help="a directory holding an ocr2 config.json (or the file itself); default: --preset")
    p.add_argument("--preset", default="official", help="OCR2Config preset when --model is not given (official)")
    p.add_argument("--attn-implementation", choices=("sdpa", "sdpa_split", "flash", "auto"),
                   help="override the config's attention backend (the encoder's memory depends on it)")
    p.add_argument("--mode", type=_list(str, ("full", "lora")), default=["full", "lora"])
    p.add_argument("--stage", type=_list(str, STAGES), default=list(STAGES),
                   help="the paper stage whose freezing full fine-tuning uses (configs/stage/*.yaml)")
    p.add_argument("--zero", type=_list(int, (0, 1, 2, 3)), default=[1, 2, 3],
                   help="ZeRO stages (1,2,3); 0 for comparison only: the trainer refuses bf16 with ZeRO 0")
    p.add_argument("--gpus", type=_list(int), default=[1, 8])
    p.add_argument("--checkpointing", type=_list(_on_off), default=[False, True], help="on,off")
    p.add_argument("--micro-batch", type=_list(int), default=[1], help="samples per GPU per micro-step (1)")
    p.add_argument("--seq-len", type=_list(int), default=[4096],
                   help="decoder positions per sample, image placeholders included (4096)")
    p.add_argument("--views", type=_list(int), default=[7],
                   help="views per sample: 1 global + (views - 1) crops; the release uses 1 or 3-7 (7)")
    p.add_argument("--answer-tokens", type=_list(int), default=[1024],
                   help="labelled positions per sample, where the head and loss run (the answer); capped at the "
                        "text positions the views leave (1024)")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-experts", type=_on_off, default=True, help="adapters on the routed experts too (on)")
    p.add_argument("--reduce-bucket-size", type=float, default=5e8,
                   help="DeepSpeed zero_optimization.reduce_bucket_size in elements (its default, 5e8)")
    p.add_argument("--grad-accum", choices=("fp32", "bf16"), default="fp32",
                   help="gradient accumulation and communication dtype (fp32: what ocr2-train sets under bf16; "
                        "bf16: DeepSpeed's bf16 defaults, for comparison)")
    p.add_argument("--reserve-gib", type=float, default=1.5,
                   help="kept free on every GPU for the CUDA context, NCCL and the allocator (1.5)")
    return p


def load_config(args) -> tuple[OCR2Config, str]:
    if not args.model:
        try:
            cfg, source = OCR2Config.from_preset(args.preset), f"`{args.preset}` preset"
        except ValueError as e:
            raise SystemExit(f"ocr2-plan: {e}") from None
    else:
        path = Path(args.model)
        path = path / "config.json" if path.is_dir() else path
        if not path.exists():
            raise SystemExit(f"ocr2-plan: {path} not found (--model takes a directory with an ocr2 config.json)")
        try:
            cfg, source = OCR2Config.load(path), str(path)
        except ValueError as e:
            raise SystemExit(f"ocr2-plan: {e}") from None
    if args.attn_implementation:
        cfg = dataclasses.replace(cfg, attn_implementation=args.attn_implementation)
        source += f", attn_implementation={args.attn_implementation}"
    return cfg, source


def setups(args) -> list[Setup]:
    out = []
    for mode in args.mode:
        for stage in (args.stage if mode == "full" else [STAGES[-1]]):
            for ck, zero, gpus, b, length, views, answer in itertools.product(
                    args.checkpointing, args.zero, args.gpus, args.micro_batch, args.seq_len, args.views,
                    args.answer_tokens):
                out.append(Setup(mode=mode, stage=stage, zero=zero, gpus=gpus, checkpointing=ck, micro_batch=b,
                                 seq_len=length, views=views, answer_tokens=answer, lora_rank=args.lora_rank,
                                 lora_experts=args.lora_experts))
    return out


SHAPE_FIELDS = ("micro_batch", "seq_len", "views", "answer_tokens")


def _shape_value(cfg: OCR2Config, s: Setup, field: str) -> int:
    """A row's batch-shape value; answer tokens as planned (capped at the text positions)."""
    return answer_positions(cfg, s) if field == "answer_tokens" else getattr(s, field)


def _shape_columns(cfg: OCR2Config, rows: list[Setup]) -> list[str]:
    """The batch-shape fields that vary between rows (shown as columns; fixed ones go in the header)."""
    return [f for f in SHAPE_FIELDS if len({_shape_value(cfg, s, f) for s in rows}) > 1]


def _g(x: float) -> str:
    return f"{x / GiB:.2f}"


def fits(peak: float, capacity: int, reserve: float) -> str:
    """yes: within the capacity less the reserve and 5% for fragmentation; tight: within the capacity; no."""
    if peak <= (0.95 * capacity - reserve) * GiB:
        return "yes"
    return "tight" if peak <= capacity * GiB else "no"


def _label(s: Setup) -> tuple[str, str]:
    if s.mode == "lora":
        return f"LoRA r={s.lora_rank}" + ("" if s.lora_experts else " (no experts)"), "adapters only"
    return "full", s.stage


def per_unit_table(cfg: OCR2Config, rows: list[Setup]) -> list[str]:
    """Activations per decoder token, per answer token and per view: what one more adds (saved + recomputed)."""
    lines = ["| mode | stage | ckpt | decoder KiB / token | logits+loss KiB / answer token | loss chunk MiB | "
             "global view MiB | crop view MiB |", "|---|---|---|---:|---:|---:|---:|---:|"]
    form = encoder_attention_form(cfg)
    d = cfg.decoder
    seen = set()
    for s in rows:
        key = (_label(s), s.checkpointing)
        if key in seen:
            continue
        seen.add(key)
        t, ck = trains_for(s), s.checkpointing

        def total(act: ab.Act) -> float:
            return act.saved + act.recompute

        def dec(n: int) -> float:
            return total(ab.decoder(cfg, t, BF16, n, ck))

        def loss(n: int) -> dict[str, float]:
            return ab.logits_loss(d.vocab_size, d.hidden_size, BF16, n, t.lm_head)

        def views(size: int, n: int) -> float:
            return (total(ab.vision(cfg, t, BF16, n, size, checkpointing=ck))
                    + total(ab.encoder(cfg, t, BF16, n, size, ck, form)))

        def view(size: int) -> float:  # what a second view of this size adds
            return views(size, 2) - views(size, 1)

        per_answer = loss(4097)["saved"] - loss(4096)["saved"]
        mode, stage = key[0]
        lines.append(f"| {mode} | {stage} | {'on' if ck else 'off'} | {(dec(8192) - dec(4096)) / 4096 / 1024:.1f} | "
                     f"{per_answer / 1024:.1f} | {loss(4096)['transient'] / 2**20:.0f} | "
                     f"{view(cfg.global_view_size) / 2**20:.1f} | {view(cfg.crop_size) / 2**20:.1f} |")
    return lines


SHAPE_TITLES = {"micro_batch": "batch", "seq_len": "seq", "views": "views", "answer_tokens": "answer"}


def memory_table(cfg: OCR2Config, rows: list[Setup], ds: DeepSpeedSizes, reserve: float) -> list[str]:
    shape = _shape_columns(cfg, rows)
    head = ("| mode | stage | ZeRO | GPUs | ckpt | " + "".join(f"{SHAPE_TITLES[f]} | " for f in shape)
            + "weights | grads | optimizer | activations | logits/loss | buffers | step | **peak** | "
            + " | ".join(f"{c} GB" for c in CAPACITIES) + " |")
    lines = [head, "|" + "---|" * 5 + "---:|" * (len(shape) + 8) + ":---:|" * len(CAPACITIES)]
    for s in rows:
        p = plan(cfg, s, ds)
        mode, stage = _label(s)
        cells = [mode, stage, str(s.zero), str(s.gpus), "on" if s.checkpointing else "off",
                 *(str(_shape_value(cfg, s, f)) for f in shape), _g(p.weights),
                 _g(p.grads), _g(p.optimizer), _g(p.activation_bytes), _g(p.logits), _g(p.buffers), _g(p.step),
                 f"**{_g(p.peak)}**"] + [fits(p.peak, c, reserve) for c in CAPACITIES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def counts_table(cfg: OCR2Config, rows: list[Setup], ds: DeepSpeedSizes) -> list[str]:
    from train.memory_plan import count_parameters

    lines = ["| mode | stage | parameters on GPU | trainable |", "|---|---|---:|---:|"]
    seen = set()
    for s in rows:
        if _label(s) in seen:
            continue
        seen.add(_label(s))
        c = count_parameters(cfg, s, ds)
        lines.append(f"| {_label(s)[0]} | {_label(s)[1]} | {c.total:,} | {c.trainable:,} |")
    return lines


ASSUMPTIONS = """\
- Per GPU, GiB. bf16 training as ocr2-train runs it on CUDA (DeepSpeed `bf16`, a torch AdamW, gradients accumulated
  and reduced in fp32: `data_types.grad_accum_dtype` and `communication_data_type` fp32, train/builders.py;
  {accum}).
- weights: bf16 (ZeRO-3: partitioned; parameters of at most {persist:,} elements stay whole). grads, with fp32
  accumulation: ZeRO 1 keeps the bf16 grads and a whole fp32 gradient buffer (DeepSpeed's BF16_Optimizer, not
  partitioned); ZeRO 2-3 keep the fp32 gradient partition (ZeRO 0: bf16, whole). optimizer: fp32 master + Adam's
  two fp32 moments (partitioned from ZeRO 1; ZeRO-3 adds its fp32 gradient buffer of one sub-group).
- ZeRO 0 rows are for comparison only: ocr2-train refuses precision bf16 with ZeRO 0 (train/builders.py), and
  DeepSpeed refuses fp32 accumulation there.
- step: transient of `optimizer.step()` after backward (the fp32 gradient copy and AdamW's foreach sqrt); the peak
  takes the larger of it and the forward/backward working set.
- activations: tensors autograd saves (counted from ocr2/modeling; tests/test_plan.py finds them within a few KB of
  what the tiny model saves) plus, with checkpointing, the largest layer recomputed in backward. Checkpointing
  (`OCR2Model.set_gradient_checkpointing`, as the trainer sets it) covers the SAM blocks when the tokenizer trains,
  the encoder and the decoder layers. Frozen modules save nothing, but a checkpointed or trainable module after
  them keeps its input. Kernels: flash attention in the decoder (rows not padded; a padded batch adds a dense mask
  per layer); the encoder in its {encoder_form} (on CUDA `sdpa` resolves to `sdpa_split` and `auto` to `flash` or
  `sdpa_split`: a mask spec with a two-call form runs as two mask-free fused calls; a dense mask with grouped-query
  heads would leave SDPA only its math kernel); the tokenizer's dense rel-pos bias through SDPA's memory-efficient
  kernel.
- LoRA: ocr2/lora.py's adapters (`experiment=finetune_lora` defaults) of rank r on the decoder's q/k/v/o and every
  SwiGLU (dense, shared, and with experts on the routed experts through PEFT `target_parameters`, which merges
  W + BA every forward: the merged expert weights are saved for backward); dropout 0; everything else frozen
  (`lora.encoder` and `lora.modules_to_save` are not modelled).
- logits/loss: the head and cross-entropy run on the labelled (answer) positions only, {answer} per sample
  (`--answer-tokens`, capped at the text positions), in chunks of {chunk:,} (ocr2/modeling/lm_loss.py); no logits
  are held. Head trains: each chunk is checkpointed, forward keeps the selected hidden states, the int64 targets
  and indices (2 x hidden + 24 bytes per answer token), backward recomputes one chunk (its fp32 log-softmax and two
  fp32 gradient buffers: 12 bytes x vocabulary ({vocab:,}) x chunk). Head frozen (LoRA, a stage freezing lm_head):
  not recomputed, each chunk keeps its fp32 log-softmax (4 bytes x vocabulary + 24 per answer token), plus one
  chunk's two gradient buffers in backward.
- buffers: ZeRO 0 flattens gradients for the all-reduce in buckets of ~{allreduce:.0e} elements (fixed in
  DeepSpeed's engine); ZeRO 1 with fp32 accumulation all-reduces its fp32 gradient buffer in place; ZeRO 2-3
  allocate one reduce bucket of {reduce:.0e} elements (`reduce_bucket_size`) in the communication dtype however few
  parameters train; ZeRO-3 also holds the largest module's gathered weights plus the prefetch bucket
  ({prefetch:.0e}). `allgather_bucket_size` allocates nothing: NCCL gathers straight into the flat bf16 weights.
- fits: yes when the peak is within 95% of the card less {reserve} GiB (CUDA context, NCCL, fragmentation); tight when
  within the card; no otherwise. Not counted: the CUDA context itself, data-loader pinned memory, padding-dependent
  masks. ZeRO-3 builds the model partitioned (deepspeed.zero.Init, train/zero_init.py): no whole copy at start-up
  unless trainer.zero_init=false."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg, source = load_config(args)
    ds = DeepSpeedSizes(reduce_bucket_size=int(args.reduce_bucket_size), fp32_grad_accum=args.grad_accum == "fp32")
    try:
        rows = setups(args)
    except ValueError as e:
        print(f"ocr2-plan: {e}", file=sys.stderr)
        return 2
    # A sweep may pair a short sequence with many views: such rows are left out (and said), not the whole table.
    skipped = sorted({(s.seq_len, s.views) for s in rows if cfg.image_token_count(s.views - 1) >= s.seq_len})
    rows = [s for s in rows if (s.seq_len, s.views) not in skipped]
    if not rows:
        print(f"ocr2-plan: no setup leaves room for text: {len(skipped)} (seq-len, views) pair(s) where the "
              f"image positions fill the sequence, e.g. {skipped[0]}", file=sys.stderr)
        return 2
    try:
        body = memory_table(cfg, rows, ds, args.reserve_gib)
    except ValueError as e:
        print(f"ocr2-plan: {e}", file=sys.stderr)
        return 2
    if skipped:
        body += ["", "Left out (the views fill the sequence): " + ", ".join(
            f"seq {length} with {v} views ({cfg.image_token_count(v - 1)} image positions)" for length, v in skipped)]
    views = ", ".join(f"{v} ({cfg.image_token_count(v - 1)} image positions)" for v in args.views)
    short = sorted({(s.seq_len, s.views, answer_positions(cfg, s)) for s in rows
                    if answer_positions(cfg, s) < s.answer_tokens})
    capped = (" (capped at the text positions: " + ", ".join(f"{n} for seq {length} with {v} views"
                                                           for length, v, n in short) + ")") if short else ""
    out = [f"# ocr2-plan: per-GPU memory of one training step ({source})", "",
           f"micro-batch {', '.join(map(str, args.micro_batch))}; decoder positions per sample "
           f"{', '.join(map(str, args.seq_len))}; views per sample (1 global {cfg.global_view_size}² + crops "
           f"{cfg.crop_size}²) {views}; answer (labelled) tokens per sample "
           f"{', '.join(map(str, args.answer_tokens))}{capped}; bf16.", "",
           "## Parameters", "", *counts_table(cfg, rows, ds), "",
           "## Activations per decoder token, per answer token and per view (bf16)", "", *per_unit_table(cfg, rows), "",
           "## Per-GPU memory (GiB)", "", *body, "", "## Assumptions", "",
           ASSUMPTIONS.format(persist=ds.param_persistence_threshold,
                              accum=("here `--grad-accum bf16`: DeepSpeed's bf16 defaults instead"
                                     if not ds.fp32_grad_accum else "`--grad-accum bf16` shows DeepSpeed's defaults"),
                              vocab=cfg.decoder.vocab_size,
                              answer=", ".join(map(str, args.answer_tokens)), chunk=ab.CHUNK_TOKENS,
                              allreduce=ds.allreduce_bucket_size, reduce=ds.reduce_bucket_size,
                              prefetch=ds.prefetch_bucket_size, reserve=args.reserve_gib,
                              encoder_form=f"{encoder_attention_form(cfg)} form "
                                           f"(attn_implementation={cfg.attn_implementation})")]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
