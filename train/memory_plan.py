"""Per-GPU memory of one ocr2-train step, analytically: model states, activations, logits/loss, buffers.

The head and loss run on the labelled (answer) positions only (ocr2/modeling/lm_loss.py), so the logits/loss term
depends on `Setup.answer_tokens`, not on the sequence length.

Parameter counts are exact: the model is built on the meta device and frozen with train/stages.py's own
`apply_freezing` and the stage yamls, or given the adapters of ocr2/lora.py's `apply_lora` (its defaults: the
decoder's projections and routed experts; `lora.encoder` and `modules_to_save` are not modelled). Model states follow
what the trainer's DeepSpeed setup does under bf16 (train/builders.py: bf16 enabled, a torch AdamW passed in,
`data_types.grad_accum_dtype=fp32` and `communication_data_type=fp32`, other ZeRO keys at their defaults; DeepSpeed
0.19 source). `DeepSpeedSizes.fp32_grad_accum=False` gives DeepSpeed's bf16 defaults instead (gradients accumulated
and reduced in bf16), for comparison:
- ZeRO 0 (DeepSpeed's bf16 unfused optimizer): bf16 weights and grads, a full fp32 master copy and Adam's two fp32
  moments; at `step()` every gradient is copied to fp32. DeepSpeed refuses fp32 accumulation at ZeRO 0 (and the
  trainer refuses bf16 there), so the row is the same either way.
- ZeRO 1 with fp32 accumulation (DeepSpeed's BF16_Optimizer): the bf16 grads stay allocated (zeroed, not freed) and
  a whole fp32 gradient buffer (4 bytes x trainable, not partitioned) accumulates them; it is all-reduced in place
  (one flat buffer per parameter group) and the optimizer reads its partition as a view. Master and moments are
  partitioned. Without fp32 accumulation: bf16 grads whole until the boundary, then the reduced partition is copied
  out (+ 2 bytes / N), and the step copies it to fp32.
- ZeRO 2: only the gradient partition is kept, in fp32 with fp32 accumulation (else bf16), plus the reduce bucket,
  allocated in the communication dtype.
- ZeRO 3: weights partitioned too, except parameters of at most `param_persistence_threshold` elements (kept whole);
  the gradient partitions live in one flat buffer of the accumulation dtype; the optimizer's fp32 gradient buffer of
  one sub-group is allocated once at init; one module's weights are gathered at a time.
The torch AdamW runs its foreach form: `step()` allocates one more fp32 tensor per moment (sqrt of the second
moment). LoRA: the frozen bf16 base plus the adapters, which DeepSpeed casts to bf16 like every parameter and
treats as above (fp32 master, moments and step gradient per adapter parameter).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ocr2.config import OCR2Config
from train import activation_bytes as ab

GiB = 1024 ** 3
STAGES = ("stage1_encoder", "stage2_query", "stage3_decoder")
BF16, F32 = 2, 4


@dataclass(frozen=True)
class DeepSpeedSizes:
    """The DeepSpeed sizes the trainer leaves at their defaults (train/builders.py sets none of them)."""

    reduce_bucket_size: int = 500_000_000  # elements; ZeRO 1-3 allocate one bucket this size in bf16
    # Elements; ZeRO 0 flattens gradients in buckets of about this size (engine.MEMORY_OPT_ALLREDUCE_SIZE, fixed).
    allreduce_bucket_size: int = 500_000_000
    prefetch_bucket_size: int = 50_000_000  # ZeRO-3 stage3_prefetch_bucket_size
    param_persistence_threshold: int = 100_000  # ZeRO-3: parameters this small are never partitioned
    sub_group_size: int = 1_000_000_000  # ZeRO-3: the fp32 gradient buffer covers one sub-group's partition
    # data_types.grad_accum_dtype and communication_data_type fp32, as the trainer sets them under bf16; False:
    # DeepSpeed's bf16 defaults (accumulation and reduction in bf16)
    fp32_grad_accum: bool = True


@dataclass(frozen=True)
class Setup:
    """One training configuration (one row of the plan)."""

    mode: str = "full"  # full | lora
    stage: str = "stage3_decoder"  # the stage whose freezing full fine-tuning uses (ignored for LoRA)
    zero: int = 2
    gpus: int = 1
    checkpointing: bool = False
    micro_batch: int = 1
    seq_len: int = 4096  # decoder positions per sample, image placeholders included
    views: int = 7  # per sample: one global view plus views - 1 crops
    # Labelled positions per sample (where the loss is computed: the answer); at most what the views and the first
    # position leave of seq_len (see `answer_positions`).
    answer_tokens: int = 1024
    lora_rank: int = 16
    lora_experts: bool = True  # adapters on the routed experts' stacked weights as well

    def __post_init__(self):
        if self.mode not in ("full", "lora"):
            raise ValueError(f"mode must be 'full' or 'lora', got {self.mode!r}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.zero not in (0, 1, 2, 3):
            raise ValueError(f"ZeRO stage must be 0-3, got {self.zero}")
        for name in ("gpus", "micro_batch", "seq_len", "views", "lora_rank", "answer_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Counts:
    total: int  # every parameter on the GPU (LoRA: base + adapters)
    trainable: int
    persistent: int  # ZeRO-3: parameters kept whole (numel <= persistence threshold)
    largest_module: int  # the most parameters one module owns itself (ZeRO-3 gathers a module at a time)
    trainable_sizes: tuple[int, ...]  # numel of every trainable tensor, in module order (ZeRO-0 buckets)


def stage_frozen(stage: str) -> list[str]:
    """The top-level modules a stage freezes, from its yaml in configs/stage/ (the trainer's own source)."""
    from configs import CONFIG_DIR

    data = yaml.safe_load((Path(CONFIG_DIR) / "stage" / f"{stage}.yaml").read_text())
    return list(data.get("frozen") or [])


def meta_model(cfg: OCR2Config):
    """OCR2Model with every tensor on the meta device: exact shapes, no memory."""
    from ocr2 import OCR2Model

    with torch.device("meta"):
        return OCR2Model(cfg)


def _config_key(cfg: OCR2Config) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


@functools.lru_cache(maxsize=32)
def _counts(key: str, mode: str, stage: str, rank: int, experts: bool, persist: int) -> Counts:
    from train.stages import apply_freezing

    model = meta_model(OCR2Config.from_dict(json.loads(key)))
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    if mode == "lora":
        from ocr2.lora import LoraSettings, apply_lora

        with torch.device("meta"):  # the adapters peft adds are meta tensors too
            model = apply_lora(model, LoraSettings(r=rank, experts=experts))
    else:
        apply_freezing(model, stage_frozen(stage))
    sizes = tuple(p.numel() for p in model.parameters() if p.requires_grad)
    every = [p.numel() for p in model.parameters()]
    return Counts(total=sum(every), trainable=sum(sizes), persistent=sum(n for n in every if n <= persist),
                  largest_module=largest, trainable_sizes=sizes)


def count_parameters(cfg: OCR2Config, setup: Setup, ds: DeepSpeedSizes = DeepSpeedSizes()) -> Counts:
    return _counts(_config_key(cfg), setup.mode, setup.stage, setup.lora_rank, setup.lora_experts,
                   ds.param_persistence_threshold)


# ----------------------------------------------------------------------------------------- model states


def model_states(c: Counts, zero: int, gpus: int, ds: DeepSpeedSizes = DeepSpeedSizes()) -> dict[str, float]:
    """Bytes per GPU: weights, grads (while backward and reduction run), optimizer (resident), grads_step (what is
    left of the bf16 gradients at optimizer.step()) and step (the step's transient)."""
    t, n = c.trainable, gpus
    part = t / n if zero >= 1 else t  # ZeRO >= 1 partitions master weights and moments
    if zero == 3:
        weights = BF16 * (c.persistent + (c.total - c.persistent) / n)
    else:
        weights = BF16 * c.total
    acc = F32 if ds.fp32_grad_accum else BF16  # the dtype gradients are accumulated in
    if zero == 1 and ds.fp32_grad_accum:
        # BF16_Optimizer: bf16 grads kept between steps plus the whole fp32 accumulation buffer (not partitioned).
        grads = grads_step = BF16 * t + F32 * t
    else:
        grads = {0: BF16 * t, 1: BF16 * (t + t / n), 2: acc * t / n, 3: acc * t / n}[zero]
        # ZeRO 1 moves the whole gradients through the reduce bucket at the boundary and keeps only its partition.
        grads_step = BF16 * t if zero == 0 else acc * t / n
    optimizer = 3 * F32 * part  # fp32 master + exp_avg + exp_avg_sq
    if zero == 3:
        # The fp32 gradient buffer of the largest sub-group's partition is allocated once at init.
        optimizer += F32 * min(t, ds.sub_group_size) / n
        step = F32 * min(t, ds.sub_group_size) / n  # foreach sqrt of one sub-group
    elif zero == 1 and ds.fp32_grad_accum:
        step = F32 * part  # the fp32 gradient partition is a view of the buffer: only AdamW's foreach sqrt
    else:
        step = 2 * F32 * part  # fp32 gradient copy + foreach sqrt of the second moment
    return {"weights": weights, "grads": grads, "optimizer": optimizer, "grads_step": grads_step, "step": step}


def _allreduce_bucket(sizes: tuple[int, ...], bucket: int) -> int:
    """Largest flat buffer of ZeRO 0's gradient all-reduce: gradients are appended until their sum passes the
    bucket size, then flattened into one tensor (engine.allreduce_no_retain)."""
    largest = current = 0
    for n in sizes:
        current += n
        if current > bucket:
            largest, current = max(largest, current), 0
    return max(largest, current)


def buffers(c: Counts, zero: int, ds: DeepSpeedSizes = DeepSpeedSizes()) -> float:
    """Communication buffers (in the communication dtype: fp32 as the trainer sets it, bf16 at ZeRO 0) and, for ZeRO-3, the gathered weights of the module being computed."""
    if zero == 0:
        return BF16 * _allreduce_bucket(c.trainable_sizes, ds.allreduce_bucket_size)
    if zero == 1 and ds.fp32_grad_accum:
        return 0.0  # BF16_Optimizer all-reduces its flat fp32 gradient buffers in place
    comm = F32 if ds.fp32_grad_accum else BF16  # communication_data_type: the reduce bucket's dtype
    bucket = comm * ds.reduce_bucket_size  # allocated at full size however few parameters train
    if zero == 3:
        return bucket + BF16 * (c.largest_module + ds.prefetch_bucket_size)
    return bucket


# ----------------------------------------------------------------------------------------- activations


def trains_for(setup: Setup) -> ab.Trains:
    if setup.mode == "lora":
        return ab.Trains(vision=False, encoder=False, projector=False, decoder=False, embed=False, lm_head=False,
                         lora_rank=setup.lora_rank, lora_experts=setup.lora_experts)
    frozen = set(stage_frozen(setup.stage))
    return ab.Trains(vision="vision_tokenizer" not in frozen, encoder="encoder" not in frozen,
                     projector="projector" not in frozen, decoder="decoder" not in frozen,
                     embed="decoder" not in frozen, lm_head="lm_head" not in frozen)


def check_supported(cfg: OCR2Config) -> None:
    if cfg.encoder.residual != "residual" or cfg.decoder.residual != "residual":
        raise ValueError("the plan models plain residual stacks only (encoder/decoder residual='residual')")
    if cfg.attn_implementation not in ("sdpa", "sdpa_split", "flash", "auto"):
        raise ValueError(f"the plan models the fused attention kernels; attn_implementation "
                         f"{cfg.attn_implementation!r} (eager keeps every attention matrix) is not modelled")


def encoder_attention_form(cfg: OCR2Config) -> str:
    """The encoder's attention as CUDA runs it (ocr2/modeling/attention.py): `sdpa` resolves to `sdpa_split` on
    CUDA and `auto` to `flash` or `sdpa_split`, so a mask spec with a two-call form (the official `causal_flow`)
    runs as two mask-free fused calls ("split"), one without queries as one call ("whole"); a spec with neither
    gets the dense mask, which with grouped-query heads leaves CUDA only SDPA's math kernel ("math")."""
    from ocr2.modeling.attention import _encoder_kernel
    from ocr2.modeling.masks import get_mask_spec

    resolved = "flash" if cfg.attn_implementation in ("flash", "auto") else "sdpa_split"
    kind = _encoder_kernel(get_mask_spec(cfg.encoder.mask), resolved)
    if kind in ("split", "whole"):
        return kind
    gqa = cfg.encoder.num_kv_heads != cfg.encoder.num_heads
    return "math" if gqa else "fused"


def answer_positions(cfg: OCR2Config, setup: Setup) -> int:
    """Labelled positions per sample: `answer_tokens`, capped at the text positions the views leave (the first
    position is never a target)."""
    room = setup.seq_len - 1 - cfg.image_token_count(setup.views - 1)
    return max(0, min(setup.answer_tokens, room))


def activations(cfg: OCR2Config, setup: Setup, a: int = BF16, vision_attention: str = "cuda",
                encoder_attention: str | None = None) -> dict[str, ab.Act]:
    """Per GPU, one micro-batch: every sample has one global view and views - 1 crops. Checkpointing covers the
    SAM blocks (when the tokenizer trains), the encoder and the decoder layers, as the trainer sets it."""
    check_supported(cfg)
    form = encoder_attention or encoder_attention_form(cfg)
    t = trains_for(setup)
    b, crops = setup.micro_batch, setup.views - 1
    image_tokens = cfg.image_token_count(crops)
    if image_tokens >= setup.seq_len:
        raise ValueError(f"{setup.views} views take {image_tokens} decoder positions: seq_len {setup.seq_len} "
                         "leaves no room for text")
    ck = setup.checkpointing
    vis = ab.vision(cfg, t, a, b, cfg.global_view_size, vision_attention, ck)
    enc = ab.encoder(cfg, t, a, b, cfg.global_view_size, ck, form)
    if crops:
        vis = vis + ab.vision(cfg, t, a, b * crops, cfg.crop_size, vision_attention, ck)
        enc = enc + ab.encoder(cfg, t, a, b * crops, cfg.crop_size, ck, form)
    dec = ab.decoder(cfg, t, a, b * setup.seq_len, ck)
    return {"vision": vis, "encoder": enc, "decoder": dec}


# ----------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    setup: Setup
    counts: Counts
    weights: float
    grads: float
    optimizer: float
    grads_step: float
    step: float
    activations: dict[str, ab.Act] = field(repr=False)
    logits: float  # the head and loss over the labelled positions: saved plus one chunk's backward transient
    buffers: float

    @property
    def states(self) -> float:
        return self.weights + self.grads + self.optimizer

    @property
    def activation_bytes(self) -> float:
        """Saved activations plus the largest checkpointed segment recomputed in backward."""
        acts = list(self.activations.values())
        return sum(x.saved for x in acts) + max(x.recompute for x in acts)

    @property
    def peak(self) -> float:
        """Weights and optimizer states plus the larger of the forward/backward working set (with the gradients)
        and the optimizer step (what is left of the gradients, and the step's transient). Conservative: the loss
        backward's buffers, the recomputed layer and the buffers are summed although they do not all peak at once."""
        backward = self.grads + self.activation_bytes + self.logits + self.buffers
        return self.weights + self.optimizer + max(backward, self.grads_step + self.step)


def logits_loss(cfg: OCR2Config, setup: Setup, a: int = BF16) -> dict[str, float]:
    """The head and loss over the micro-batch's labelled positions (they are chunked across the whole batch)."""
    return ab.logits_loss(cfg.decoder.vocab_size, cfg.decoder.hidden_size, a,
                          setup.micro_batch * answer_positions(cfg, setup), trains_for(setup).lm_head)


def plan(cfg: OCR2Config, setup: Setup, ds: DeepSpeedSizes = DeepSpeedSizes()) -> Plan:
    counts = count_parameters(cfg, setup, ds)
    states = model_states(counts, setup.zero, setup.gpus, ds)
    ll = logits_loss(cfg, setup)
    return Plan(setup=setup, counts=counts, activations=activations(cfg, setup), logits=sum(ll.values()),
                buffers=buffers(counts, setup.zero, ds), **states)
