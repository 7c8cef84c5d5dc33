"""Bytes that autograd keeps from the forward to the backward of OCR2Model (saved tensors), module by module.

Counted op by op from the code in ocr2/modeling as it runs today, with PyTorch's rule that an op saves an operand
only for the gradients it must compute: a Linear keeps its input only when its weight trains (or a LoRA adapter
reads that input), its weight only when its input needs a gradient; `weight * y` in RMSNorm keeps `y` only when the
norm's weight trains. So a frozen module saves nothing when nothing upstream trains, but a trainable module after it
still keeps its input (the projector keeps the frozen encoder's whole final-norm output, visual rows included,
because its input is a slice of that storage).

`a` is the byte width of the activation dtype (2 for bf16 training, 4 for the fp32 CPU cross-check); tensors the
code computes in fp32 whatever the dtype (RMSNorm's upcast, the router, the expert sum, the logits) are 4 bytes.
Checked against saved-tensor bytes measured on the tiny model (tests/test_plan.py).

Kernel forms (CUDA): decoder attention is SDPA's flash form (saves q, k, v, out and a fp32 logsumexp). The
encoder's mask specs with a two-call form (the official `causal_flow` among them) run as two mask-free calls on
CUDA whatever the backend (`sdpa` resolves to `sdpa_split` there, `auto` to `flash` or `sdpa_split`;
ocr2/modeling/attention.py): visual rows over visual keys, query rows over every key (causal, bottom-right), each
a fused kernel taking grouped-query heads (flash), then their outputs concatenated (`encoder_attention="split"`).
"split_cpu" is the same on CPU, where torch materialises the query call's bottom-right causal mask as an additive
(n_q, L) bias (the cross-check); "whole" one mask-free call (specs without queries); "fused" one call with the
dense (L, L) mask as an additive bias (CPU's flash kernel: the cross-check of dense `sdpa`); "math" SDPA's math
kernel, what CUDA gives a dense mask with grouped-query heads (specs without a two-call form): fp32 copies of q and
the repeated k, v and the fp32 (H, L, L) probabilities. The SAM blocks hand SDPA a dense rel-pos bias that needs a
gradient (memory-efficient kernel: q, k, v, the bias padded to 16 columns, out, logsumexp);
`vision_attention="cpu_blocked"` counts the CPU fp32 kernel of ocr2/modeling/rel_pos_attention.py instead.

Activation checkpointing (`OCR2Model.set_gradient_checkpointing`, which the trainer calls): every decoder and
encoder layer and every SAM block keeps only its input; backward recomputes one at a time. The loss
(ocr2/modeling/lm_loss.py) runs the head only on labelled positions, in chunks of 1,024, checkpointed whenever the
head trains (whatever the trainer's setting) and not recomputed when it is frozen (see `logits_loss`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ocr2.config import DecoderConfig, EncoderConfig, OCR2Config, VisionTokenizerConfig
from ocr2.modeling.lm_loss import CHUNK_TOKENS

F32, I64 = 4, 8


@dataclass(frozen=True)
class Trains:
    """Which parts of the model get gradients in one training setup."""

    vision: bool = True
    encoder: bool = True
    projector: bool = True
    decoder: bool = True  # every decoder weight (full fine-tuning); False with LoRA
    embed: bool = True  # decoder.embed_tokens
    lm_head: bool = True
    lora_rank: int = 0  # rank of the adapters on the decoder's projections (0: no adapters)
    lora_experts: bool = True  # adapters on the stacked routed experts too (PEFT target_parameters)

    @property
    def decoder_input_grad(self) -> bool:
        """Whether the decoder's input embeddings need a gradient (anything before the decoder trains)."""
        return self.embed or self.projector or self.encoder or self.vision


@dataclass(frozen=True)
class Act:
    """saved: bytes held from forward to backward; recompute: extra bytes while the largest checkpointed segment
    is recomputed in backward (0 without activation checkpointing)."""

    saved: float = 0.0
    recompute: float = 0.0

    def __add__(self, other: "Act") -> "Act":
        return Act(self.saved + other.saved, max(self.recompute, other.recompute))


# ----------------------------------------------------------------------------------------- shared pieces


def _rms_norm(h: int, a: int, input_grad: bool, weight_trains: bool) -> float:
    """Per token: the fp32 upcast (pow and the product save it; in fp32 it is the input itself), rsqrt (one fp32
    per token), and `y` for the weight's gradient."""
    if not input_grad:
        return 0.0
    return F32 * h + F32 + (a * h if weight_trains else 0)


def _attention(h: int, kv: int, heads: int, a: int, x_saved: bool, lora_rank: int) -> float:
    """Per token, after the norm: the norm output (for q/k/v weight grads or the adapters' A), q and k after RoPE,
    v, the output (also o_proj's input: the same storage) and the fp32 logsumexp. RoPE saves only cos/sin."""
    lora = 4 * a * lora_rank  # each adapter's A output, kept for B's gradient (q, k, v, o)
    return (a * h if x_saved else 0) + a * (h + 2 * kv) + a * h + F32 * heads + lora


def _swiglu(h: int, inter: int, a: int, weights_train: bool, lora_rank: int, x_counted: bool = False) -> float:
    """Per token: its input (for gate/up weight grads), the gate output (SiLU's backward) and the up output (the
    product's). silu(gate), which the product would keep, and the product, which down_proj or its adapter would
    keep, are rebuilt in backward from those two (ocr2/modeling/recompute.py)."""
    adapted = weights_train or lora_rank > 0
    x = a * h if adapted and not x_counted else 0
    return x + 2 * a * inter + 3 * a * lora_rank


def _rope(head_dim: int, a: int) -> float:
    """cos and sin per token: one pair per stack and forward, shared by its layers ((1, 1, L, d) in the encoder per
    view length; (rows, 1, L, d) in the decoder, whose positions come from the attention mask the trainer passes)."""
    return 2 * a * head_dim


# ----------------------------------------------------------------------------------------- decoder


def decoder_layer(d: DecoderConfig, moe: bool, t: Trains, a: int, input_grad: bool = True) -> tuple[float, float]:
    """(bytes per token, constant bytes) one decoder layer saves."""
    w, r = t.decoder, t.lora_rank
    per_token = _rms_norm(d.hidden_size, a, input_grad, w)
    per_token += _attention(d.hidden_size, d.hidden_size * d.num_kv_heads // d.num_heads, d.num_heads, a,
                            x_saved=w or r > 0, lora_rank=r)
    per_token += _rms_norm(d.hidden_size, a, True, w)
    if not moe:
        return per_token + _swiglu(d.hidden_size, d.intermediate_size, a, w, r), 0.0
    h, k, e, inter = d.hidden_size, d.num_experts_per_tok, d.n_routed_experts, d.moe_intermediate_size
    experts_adapted = w or (r > 0 and t.lora_experts)
    x_saved = w or r > 0
    # Router: softmax output; its fp32 copy of x when its weight trains (in fp32 that copy is x itself, counted
    # with the shared experts' input); the fp32 copy of its weight, constant, for x's gradient.
    per_token += F32 * e + (F32 * h if w and a != F32 else 0)
    per_token += a * h if x_saved else 0  # the norm output, input of the shared experts (and adapters)
    # Dispatch: top-k indices, token order and the gather index (int64), the gathered rows (expert weight grads),
    # each expert's gate/silu/up/product rows, the fp32 copy of the expert outputs and the weighted rows (the
    # index_add saves its source), the gathered routing weights.
    per_token += 3 * I64 * k + F32 * k
    per_token += (a * k * h if experts_adapted else 0) + 3 * a * k * inter + (a * k * inter if experts_adapted else 0)
    per_token += 2 * F32 * k * h
    shared = d.n_shared_experts * inter
    if shared:
        per_token += _swiglu(h, shared, a, w, r, x_counted=True)
    const = F32 * e * h + F32 * e  # router weight in fp32; grouped-GEMM offsets
    if r > 0 and t.lora_experts and not w:
        const += 3 * a * e * inter * h  # PEFT merges W + BA per forward: the merged expert weights are saved
    return per_token, const


def decoder(cfg: OCR2Config, t: Trains, a: int, tokens: int, checkpointing: bool) -> Act:
    """The decoder stack over `tokens` positions (micro-batch x sequence length), final norm included; the head
    and the loss are not (see `logits_loss`): they run on the labelled positions only, which the loss selects by
    index (the index saves no copy of the final norm's output over every position)."""
    d = cfg.decoder
    layers = [decoder_layer(d, i >= d.first_k_dense, t, a, input_grad=t.decoder_input_grad or i > 0)
              for i in range(d.num_layers)]
    head_dim = d.hidden_size // d.num_heads
    per_token = (I64 if t.embed else 0) + (1 if t.decoder_input_grad else 0)  # ids (embedding), scatter mask
    per_token += _rope(head_dim, a)
    per_token += _rms_norm(d.hidden_size, a, True, t.decoder)
    if not checkpointing:
        return Act(saved=tokens * (per_token + sum(p for p, _ in layers)) + sum(c for _, c in layers))
    # Checkpointed: each layer keeps its input (the residual stream); backward recomputes one layer at a time.
    biggest = max(p * tokens + c for p, c in layers)
    return Act(saved=tokens * (per_token + d.num_layers * a * d.hidden_size), recompute=biggest)


def logits_loss(vocab: int, hidden: int, a: int, labelled: int, head_trains: bool,
                chunk: int = CHUNK_TOKENS) -> dict[str, float]:
    """Head and cross-entropy over the `labelled` positions of a micro-batch (ocr2/modeling/lm_loss.py): the
    positions are selected with one `nonzero` (its (N, 2) int64 output is what the index saves), the int64
    targets are kept, and the head runs chunk by chunk; no logits are held by the output.

    Head trains: each chunk runs under activation checkpointing, so forward keeps the selected hidden states
    (the chunks' inputs); backward recomputes one chunk: its fp32 log-softmax output and the two fp32 gradient
    buffers of (chunk, vocab) are the transient. Head frozen (LoRA, a stage that freezes lm_head): nothing is
    recomputed (ZeRO-3 would not gather a frozen weight again), so every chunk's fp32 log-softmax output is saved
    instead (the head's input is not: a frozen Linear keeps only its weight); the transient is one chunk's two
    gradient buffers."""
    index = 2 * I64 + I64  # nonzero's (N, 2) row/column indices, the int64 targets
    part = min(labelled, chunk)
    if head_trains:
        return {"saved": (a * hidden + index) * labelled, "transient": 3 * F32 * vocab * part}
    chunks = -(-labelled // chunk)  # each chunk's nll_loss also keeps its fp32 total weight
    return {"saved": (F32 * vocab + index) * labelled + F32 * chunks, "transient": 2 * F32 * vocab * part}


# ----------------------------------------------------------------------------------------- encoder


def _math_attention(h: int, kv: int, heads: int, length: int, a: int) -> float:
    """Per token, SDPA's math kernel after the norm: the norm output (q/k/v weight grads), fp32 copies of the scaled
    q and of k and v (repeated to every head under GQA), the fp32 probabilities (a row of L per head), and
    o_proj's contiguous copy of the output."""
    repeated = h if kv != h else kv
    return a * h + F32 * (h + 2 * repeated) + F32 * heads * length + a * h


ENCODER_FORMS = ("split", "split_cpu", "whole", "fused", "math")


def encoder(cfg: OCR2Config, t: Trains, a: int, views: int, view_size: int, checkpointing: bool,
            attention: str = "fused") -> Act:
    """DeepEncoder V2 over `views` views of one size (run as one batch), projector input included.
    `attention`: one of ENCODER_FORMS (see the module docstring)."""
    from ocr2.modeling.masks import get_mask_spec

    e: EncoderConfig = cfg.encoder
    spec = get_mask_spec(e.mask)
    n_visual = cfg.vision.tokens_for(view_size)
    n_query = cfg.num_queries(view_size) if spec.use_queries else 0
    length = n_visual + n_query
    tokens = views * length
    h, kv = e.hidden_size, e.hidden_size * e.num_kv_heads // e.num_heads
    # The projector reads the query rows of the final norm's output: for one view that slice is a view of the
    # whole (length, h) storage, which stays; for several, F.linear flattens a strided slice into a copy.
    kept = cfg.view_output_tokens(view_size)
    projector = (a * h * (length if views == 1 else views * kept)) if t.projector else 0.0
    if not t.encoder:
        return Act(saved=projector)
    if attention not in ENCODER_FORMS:
        raise ValueError(f"encoder attention form must be one of {ENCODER_FORMS}, got {attention!r}")
    if attention == "math":
        attend, mask = _math_attention(h, kv, e.num_heads, length, a), 0.0
    else:
        attend = _attention(h, kv, e.num_heads, a, True, 0)
        mask = 0.0
        if attention in ("split", "split_cpu"):
            # Two calls: their outputs are two tensors (each saved by its call), concatenated; o_proj keeps a
            # contiguous copy of the concatenation.
            attend += a * h
        if attention == "split_cpu" and (spec.split_form() or (None, None))[1] == "causal":
            mask = a * n_query * length  # the query call's bottom-right causal mask, materialised on CPU
        elif attention == "fused":
            mask = a * length * length  # the dense (L, L) boolean, turned into an additive bias per layer call
    layer = 2 * _rms_norm(h, a, True, True) + attend + _swiglu(h, e.intermediate_size, a, True, 0)
    if not (t.vision or spec.use_queries):
        layer_0_norm = _rms_norm(h, a, True, True) - _rms_norm(h, a, False, True)  # its input needs no gradient
    else:
        layer_0_norm = 0.0
    # cos/sin come from positions 0..L-1 shared by every view of the batch.
    tail = length * _rope(h // e.num_heads, a) + tokens * _rms_norm(h, a, True, True) + projector
    if not checkpointing:
        return Act(saved=e.num_layers * (tokens * layer + mask) - tokens * layer_0_norm + tail)
    return Act(saved=e.num_layers * a * h * tokens + tail, recompute=tokens * layer + mask)


# ----------------------------------------------------------------------------------------- vision tokenizer


def _pad16(n: int) -> int:
    return -(-n // 16) * 16


def vision(cfg: OCR2Config, t: Trains, a: int, views: int, view_size: int,
           attention: str = "cuda", checkpointing: bool = False) -> Act:
    """SAM ViT-B + neck + compressor over `views` views of `view_size` px. Checkpointed (the trainer's
    `set_gradient_checkpointing`, when the tokenizer trains): each block keeps only its input, backward recomputes
    one block at a time; the patch embedding, neck and compressor are not checkpointed."""
    if not t.vision:
        return Act()
    v: VisionTokenizerConfig = cfg.vision
    grid = view_size // v.patch_size
    tokens = grid * grid
    c, heads = v.width, v.num_heads
    head_dim, hidden = c // heads, int(c * v.mlp_ratio)
    stats = 2 * F32  # LayerNorm mean and rstd per token (fp32 on CUDA)
    per_view = a * 3 * view_size * view_size  # the patch conv keeps its input pixels
    const = 0.0
    blocks = []  # (bytes per view, constant bytes) each block saves
    for i in range(v.depth):
        windowed = i not in set(v.global_attn_indexes)
        side = v.window_size if windowed else grid
        padded = math.ceil(grid / side) ** 2 * side * side if windowed else tokens
        # norm1 keeps its input; its output (qkv's input) is rebuilt from it in backward (recompute.py).
        block = a * c * tokens + stats * tokens
        # q, k, v as the attention kernel takes them (windows: the padded stack), which the rel-pos factors share.
        block += 3 * a * c * padded
        if attention == "cuda":
            # The memory-efficient kernel pads the bias rows to a multiple of 16 (a 14x14 window: 196 -> 208).
            bias = heads * padded * _pad16(side * side) if windowed else heads * tokens * _pad16(tokens)
            block += a * bias + a * c * padded + F32 * heads * padded  # bias, out, lse
        elif attention == "cpu_blocked":
            block += a * c * padded + F32 * heads * padded  # out, lse (the rel-pos factors are rebuilt from q)
        else:
            raise ValueError(f"vision attention form must be 'cuda' or 'cpu_blocked', got {attention!r}")
        # proj's input is rebuilt from the kernel's out; norm2 keeps its input, GELU its input (lin1's output);
        # norm2's output (lin1's input) and the GELU output (lin2's input) are rebuilt.
        block += a * c * tokens + stats * tokens + a * hidden * tokens
        # rel-pos tables (per call) and their index
        blocks.append((block, 2 * a * side * side * head_dim + I64 * side * side))
    n = v.neck_channels
    per_view += a * c * tokens  # neck conv 1x1 input (the last block's output)
    per_view += 2 * (a * n * tokens + stats * tokens) + 2 * a * n * tokens  # two LayerNorm2d, conv 3x3 and net_2 input
    side = grid
    for i, ch in enumerate(v.compressor_channels[:-1]):
        side = math.ceil(side / 2)
        per_view += a * ch * side * side  # later convs keep the previous conv's output
    if checkpointing:
        # Each block's input (block 0's is the position-embedded patch grid) stays; one block is recomputed.
        per_view += v.depth * a * c * tokens
        return Act(saved=views * per_view, recompute=max(views * b + k for b, k in blocks))
    return Act(saved=views * (per_view + sum(b for b, _ in blocks)) + sum(k for _, k in blocks))
