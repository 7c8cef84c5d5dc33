"""Every attention backend equals `eager` (the reference) for every registered mask variant, gradients included
(within 1e-5; parameter gradients larger than 1 relative to their magnitude).

Variants are read from the registry when the tests are collected, so a newly registered `MaskSpec` is covered
without touching this file. What cannot run here skips with its reason: `flex` has no CPU backward in torch
(its gradients are checked where CUDA is present); `flash` needs flash-attn on CUDA and is compared in bf16 at a
bf16 tolerance. The code around the flash kernels (the two-call split, varlen packing, unpadding) is checked on
CPU in fp32 against a plain-PyTorch stand-in for the two flash-attn functions it calls.
"""

from __future__ import annotations

import types

import pytest
import torch

from ocr2.config import EncoderConfig
from ocr2.modeling import attention
from ocr2.modeling.attention import causal_attention, eager_attention, encoder_attention, resolve_backend
from ocr2.modeling.encoder import DeepEncoderV2
from ocr2.modeling.masks import get_mask_spec, mask_names

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

TOL = 1e-5
BF16_TOL = 3e-2
BACKENDS = ["sdpa", "sdpa_split", "flex", "flash", "auto"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MASKS = mask_names()


def _skip_unless_runnable(backend: str, device: str, grads: bool) -> None:
    if backend == "flash":
        if device != "cuda":
            pytest.skip("flash-attn runs on CUDA only and this run has no GPU (its wrapper is tested on CPU below)")
        if not attention.flash_available():
            pytest.skip("flash-attn is not installed (pip install '.[flash]')")
    if backend == "flex" and grads and device == "cpu":
        pytest.skip(f"FlexAttention has no CPU backward in torch {torch.__version__}; flex gradients are checked "
                    "on CUDA")


def _dtype_tol(backend: str) -> tuple[torch.dtype, float]:
    return (torch.bfloat16, BF16_TOL) if backend == "flash" else (torch.float32, TOL)


def _encoder(backend: str, mask: str, device: str, dtype: torch.dtype, positions: dict | None = None) -> DeepEncoderV2:
    torch.manual_seed(0)
    cfg = EncoderConfig(hidden_size=48, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96, mask=mask,
                        **(positions or {}))
    enc = DeepEncoderV2(cfg, {768: 9, 1024: 16}, backend)
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(std=0.1) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    return enc.to(device=device, dtype=dtype)


def _run_encoder(backend: str, mask: str, device: str, dtype: torch.dtype, grads: bool, positions: dict | None = None):
    # A module is built in training mode, so `shuffle_visual` shuffles here; both runs draw the same order (the
    # global RNG is seeded in _encoder and nothing else draws from it before the forward).
    enc = _encoder(backend, mask, device, dtype, positions)
    x = torch.randn(2, 16, 48, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)
    if not grads:
        with torch.no_grad():
            return enc(x, view_size=1024).float(), None, None
    x.requires_grad_(True)
    out = enc(x, view_size=1024)
    (out.float() * torch.linspace(-1, 1, out.numel(), device=device).reshape(out.shape)).sum().backward()
    grads_p = {n: p.grad.float() for n, p in enc.named_parameters() if p.grad is not None}
    return out.detach().float(), x.grad.float(), grads_p


def _worst(got: dict, ref: dict) -> float:
    """Largest gradient error, relative to each tensor's scale where that exceeds 1: parameter gradients sum
    over every position, so fp32 rounding grows with their magnitude (1e-5 absolute below magnitude 1)."""
    assert got.keys() == ref.keys()
    return max(((got[n] - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1.0)).item() for n in ref)


# ----------------------------------------------------------------------------------------- encoder, per mask


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_output_matches_eager(backend, mask, device):
    _skip_unless_runnable(backend, device, grads=False)
    dtype, tol = _dtype_tol(backend)
    ref, _, _ = _run_encoder("eager", mask, device, torch.float32 if dtype == torch.bfloat16 else dtype, False)
    got, _, _ = _run_encoder(backend, mask, device, dtype, False)
    assert (got - ref).abs().max().item() <= tol


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_gradients_match_eager(backend, mask, device):
    _skip_unless_runnable(backend, device, grads=True)
    dtype, tol = _dtype_tol(backend)
    _, ref_x, ref_p = _run_encoder("eager", mask, device, torch.float32, True)
    _, got_x, got_p = _run_encoder(backend, mask, device, dtype, True)
    assert (got_x - ref_x).abs().max().item() <= tol
    assert _worst(got_p, ref_p) <= tol


# The position axis (ocr2/modeling/positions.py): every non-default scheme and the train-time shuffle, under every
# mask and backend. Positions change only q and k (and the shuffle the input order), so the kernels must agree.
POSITIONS = {
    "visual_2d": {"visual_positions": "2d"},
    "queries_shared": {"query_positions": "shared"},
    "all_2d": {"visual_positions": "2d", "query_positions": "2d"},
    "shuffle_visual": {"shuffle_visual": True},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_positions_output_matches_eager(backend, mask, positions, device):
    _skip_unless_runnable(backend, device, grads=False)
    dtype, tol = _dtype_tol(backend)
    ref, _, _ = _run_encoder("eager", mask, device, torch.float32, False, POSITIONS[positions])
    got, _, _ = _run_encoder(backend, mask, device, dtype, False, POSITIONS[positions])
    assert (got - ref).abs().max().item() <= tol


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_positions_gradients_match_eager(backend, mask, positions, device):
    _skip_unless_runnable(backend, device, grads=True)
    dtype, tol = _dtype_tol(backend)
    _, ref_x, ref_p = _run_encoder("eager", mask, device, torch.float32, True, POSITIONS[positions])
    _, got_x, got_p = _run_encoder(backend, mask, device, dtype, True, POSITIONS[positions])
    assert (got_x - ref_x).abs().max().item() <= tol
    assert _worst(got_p, ref_p) <= tol


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split", "flex", "auto"])
def test_kernel_matches_eager_with_more_queries_than_visual_tokens(backend, mask):
    """query_ratio != 1: the bottom-right causal alignment must still give queries every visual token."""
    spec = get_mask_spec(mask)
    n_visual = 5 if spec.use_queries else 14  # a spec without queries sees visual tokens only
    g = torch.Generator().manual_seed(2)
    q, k, v = torch.randn(1, 4, 14, 8, generator=g), torch.randn(1, 2, 14, 8, generator=g), \
        torch.randn(1, 2, 14, 8, generator=g)
    ref = encoder_attention(q, k, v, spec, n_visual=n_visual, backend="eager")
    got = encoder_attention(q, k, v, spec, n_visual=n_visual, backend=backend)
    assert (got - ref).abs().max().item() <= TOL


# ----------------------------------------------------------------------------------------- decoder

# (name, query length, key mask rows, sequence ids rows); keys are 7 long.
DECODER_CASES = {
    "causal": (7, None, None),
    "left_padding": (7, [[0, 0, 1, 1, 1, 1, 1], [1] * 7], None),
    "cache_step_with_padding": (2, [[0, 0, 0, 1, 1, 1, 1], [1] * 7], None),
    "cache_step": (1, None, None),
    "packed": (7, None, [[0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 1]]),
    "packed_with_padding": (7, [[1, 1, 1, 1, 1, 0, 0], [1] * 7], [[0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 1]]),
}


def _decoder_inputs(case: str, device: str, dtype: torch.dtype):
    lq, key_mask, seq = DECODER_CASES[case]
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, h, n, 8, generator=g).to(device=device, dtype=dtype)
               for h, n in ((4, lq), (2, 7), (2, 7)))
    key_mask = None if key_mask is None else torch.tensor(key_mask, dtype=torch.bool, device=device)
    seq = None if seq is None else torch.tensor(seq, device=device)
    real = torch.ones(2, lq, dtype=torch.bool, device=device) if key_mask is None else key_mask[:, 7 - lq:]
    return q, k, v, key_mask, seq, real


def _decoder_run(backend, case, device, dtype, grads):
    q, k, v, key_mask, seq, real = _decoder_inputs(case, device, dtype)
    if not grads:
        with torch.no_grad():
            return causal_attention(q, k, v, key_mask, backend=backend, sequence_ids=seq).float(), None, real
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    out = causal_attention(q, k, v, key_mask, backend=backend, sequence_ids=seq)
    weight = torch.linspace(-1, 1, out.numel(), device=device).reshape(out.shape) * real[:, None, :, None]
    (out.float() * weight).sum().backward()  # padded query rows carry no loss
    return out.detach().float(), [t.grad.float() for t in (q, k, v)], real


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(DECODER_CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_attention_matches_eager(backend, case, device):
    _skip_unless_runnable(backend, device, grads=False)
    dtype, tol = _dtype_tol(backend)
    ref, _, real = _decoder_run("eager", case, device, torch.float32, False)
    got, _, _ = _decoder_run(backend, case, device, dtype, False)
    assert torch.isfinite(got).all()
    assert (got - ref)[real[:, None, :, None].expand_as(got)].abs().max().item() <= tol


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(DECODER_CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_attention_gradients_match_eager(backend, case, device):
    _skip_unless_runnable(backend, device, grads=True)
    dtype, tol = _dtype_tol(backend)
    _, ref, _ = _decoder_run("eager", case, device, torch.float32, True)
    _, got, _ = _decoder_run(backend, case, device, dtype, True)
    assert max((a - b).abs().max().item() for a, b in zip(got, ref)) <= tol


# ----------------------------------------------------------------------------------------- flash wrapper on CPU


def _reference_flash_attn_func(q, k, v, causal=False, softmax_scale=None):
    """flash_attn_func semantics on (B, L, H, D): GQA by head groups, causal aligned bottom-right."""
    lq, lk = q.shape[1], k.shape[1]
    mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq) if causal else None
    out = eager_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, softmax_scale)
    return out.transpose(1, 2)


def _reference_flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale=None, causal=False):
    """flash_attn_varlen_func semantics on packed (T, H, D): each (cu_q[i]:cu_q[i+1], cu_k[i]:cu_k[i+1]) alone."""
    assert cu_q.dtype == cu_k.dtype == torch.int32 and len(cu_q) == len(cu_k)
    assert max_q == int((cu_q[1:] - cu_q[:-1]).max()) and max_k == int((cu_k[1:] - cu_k[:-1]).max())
    outs = [_reference_flash_attn_func(q[a:b][None], k[c:d][None], v[c:d][None], causal, softmax_scale)[0]
            for a, b, c, d in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), cu_k[:-1].tolist(), cu_k[1:].tolist())]
    return torch.cat(outs)


@pytest.fixture
def reference_flash(monkeypatch):
    fake = types.SimpleNamespace(flash_attn_func=_reference_flash_attn_func,
                                 flash_attn_varlen_func=_reference_flash_attn_varlen_func)
    monkeypatch.setattr(attention, "_flash_module", lambda: fake)
    monkeypatch.setattr(attention, "flash_available", lambda device=None, dtype=None: True)


@pytest.mark.parametrize("mask", MASKS)
def test_flash_wrapper_encoder_matches_eager(reference_flash, mask):
    _, ref_x, ref_p = _run_encoder("eager", mask, "cpu", torch.float32, True)
    _, got_x, got_p = _run_encoder("flash", mask, "cpu", torch.float32, True)
    assert (got_x - ref_x).abs().max().item() <= TOL
    assert _worst(got_p, ref_p) <= TOL


@pytest.mark.parametrize("case", sorted(DECODER_CASES))
def test_flash_wrapper_decoder_matches_eager(reference_flash, case):
    ref, ref_g, real = _decoder_run("eager", case, "cpu", torch.float32, True)
    got, got_g, _ = _decoder_run("flash", case, "cpu", torch.float32, True)
    assert (got - ref)[real[:, None, :, None].expand_as(got)].abs().max().item() <= TOL
    assert max((a - b).abs().max().item() for a, b in zip(got_g, ref_g)) <= TOL


# ----------------------------------------------------------------------------------------- selection and caching


def test_auto_picks_the_portable_split_kernels_on_cpu():
    q = torch.zeros(1, 1, 2, 4)
    assert (resolve_backend("auto", q, "encoder"), resolve_backend("auto", q, "decoder")) == ("sdpa_split", "sdpa")


def test_auto_picks_flash_when_it_can_run(reference_flash):
    assert resolve_backend("auto", torch.zeros(1, 1, 2, 4), "encoder") == "flash"


def test_unknown_backend_is_a_clear_error():
    q = torch.zeros(1, 1, 2, 4)
    with pytest.raises(ValueError, match="sdpa_split"):
        encoder_attention(q, q, q, get_mask_spec("causal_flow"), n_visual=1, backend="fast")


def _count_block_masks(monkeypatch) -> list:
    """Patch FlexAttention's create_block_mask (imported lazily where masks are built) to record each call."""
    from torch.nn.attention import flex_attention as flex

    calls, real = [], flex.create_block_mask
    monkeypatch.setattr(flex, "create_block_mask", lambda *a, **kw: calls.append(a[3:5]) or real(*a, **kw))
    return calls


def test_flex_builds_the_encoder_block_mask_once_per_forward(monkeypatch):
    """One block mask per encoder forward, shared by its 2 layers; nothing kept between forwards."""
    calls = _count_block_masks(monkeypatch)
    enc = _encoder("flex", "causal_flow", "cpu", torch.float32)
    x = torch.randn(2, 16, 48)
    with torch.no_grad():
        enc(x, view_size=1024)
        assert len(calls) == 1
        enc(x, view_size=1024)
    assert calls == [(32, 32), (32, 32)]


def test_flex_decoder_form_is_built_once_and_reused(monkeypatch):
    """The decoder's block mask is built with its form; every attention call on that form reuses it."""
    from ocr2.modeling.decoder_mask import DecoderMask

    calls = _count_block_masks(monkeypatch)
    q, k, v, key_mask, seq, _ = _decoder_inputs("packed_with_padding", "cpu", torch.float32)
    form = attention.decoder_mask_form(DecoderMask(7, 7, key_mask, seq), "flex", q)
    with torch.no_grad():
        for _ in range(3):  # three layers of one forward
            attention.decoder_attention(q, k, v, form)
    assert len(calls) == 1


def test_flex_training_on_cpu_is_a_clear_error():
    q = torch.randn(1, 2, 6, 4, requires_grad=True)
    with pytest.raises(NotImplementedError, match="sdpa_split"):
        encoder_attention(q, q, q, get_mask_spec("causal_flow"), n_visual=3, backend="flex")


# ----------------------------------------------------------------------------------------- whole model


def _padded_page_batch(cfg):
    """Two prompts of different lengths, left-padded: one page with its image, one text-only."""
    g = torch.Generator().manual_seed(5)
    views = torch.rand(1, 3, cfg.global_view_size, cfg.global_view_size, generator=g) * 2 - 1
    with_image = [cfg.bos_token_id] + [cfg.image_token_id] * cfg.image_token_count(0) + [40, 41]
    text = [cfg.bos_token_id, 50, 51, 52]
    ids = torch.full((2, len(with_image)), cfg.pad_token_id)
    mask = torch.zeros_like(ids)
    ids[0], mask[0] = torch.tensor(with_image), 1
    ids[1, -len(text):], mask[1, -len(text):] = torch.tensor(text), 1
    return dict(input_ids=ids, attention_mask=mask, global_views=views, num_crops=[0])


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split", "flex", "auto", "flash_wrapper"])
def test_cached_generation_is_the_same_on_every_backend(request, backend):
    """A tiny model, a left-padded batch, KV-cached greedy decoding: the same tokens as `eager`."""
    import dataclasses

    from ocr2 import OCR2Config, OCR2Model

    if backend == "flash_wrapper":
        request.getfixturevalue("reference_flash")
        backend = "flash"
    tokens = {}
    for name in ("eager", backend):
        torch.manual_seed(0)
        model = OCR2Model(dataclasses.replace(OCR2Config.from_preset("tiny"), attn_implementation=name)).eval()
        tokens[name] = model.generate(**_padded_page_batch(model.config), max_new_tokens=6, eos_token_id=-1).tolist()
    assert tokens[backend] == tokens["eager"]
