"""ocr2-plan (train/memory_plan.py, train/activation_bytes.py, train/plan.py) against the real model.

Activations: the bytes autograd saves during a forward of the tiny model (unique storages of the saved tensors
still held when the forward returns, parameters excluded) against the plan's count for the same setup. The plan
counts op by op and agrees to the byte today; the tolerance (TOL, 5%) leaves room for kernel changes across torch
versions. The SAM attention is measured in its CPU fp32 form (`vision_attention="cpu_blocked"`); CUDA's form is
an assumption the plan states.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling.recompute import kept_for_backward
from ocr2.tokens import IGNORE_INDEX
from train import activation_bytes as ab
from train.memory_plan import (BF16, DeepSpeedSizes, Setup, _allreduce_bucket, answer_positions, buffers,
                               count_parameters, encoder_attention_form, logits_loss, meta_model, model_states, plan,
                               stage_frozen, trains_for)
from train.plan import main
from train.stages import apply_freezing

TOL = 0.05
CFG = OCR2Config.from_preset("tiny")
STAGES = {"stage1_encoder": (), "stage2_query": ("vision_tokenizer",),
          "stage3_decoder": ("vision_tokenizer", "encoder")}


@pytest.fixture(autouse=True)
def rebuild_every_size(monkeypatch):
    """The plan counts the official size, where every tensor rebuilt in backward is far above the size below which
    ocr2/modeling/recompute.py keeps tensors as they are; the tiny model is checked with rebuilding at every size."""
    from ocr2.modeling import recompute

    monkeypatch.setattr(recompute, "MIN_BYTES", 0)


def saved_bytes(fn, model) -> int:
    """Bytes of the distinct storages autograd holds for backward after `fn()` (the graph kept alive by its
    result), parameters excluded, tensors rebuilt in backward (ocr2/modeling/recompute.py) not counted."""
    with kept_for_backward() as kept:
        out = fn()
    total = kept.nbytes(exclude=model.parameters())
    del out
    return total


def tiny(frozen=(), checkpointing=False, dtype=torch.float32) -> OCR2Model:
    torch.manual_seed(0)
    model = OCR2Model(CFG).to(dtype).train()
    apply_freezing(model, list(frozen))
    model.set_gradient_checkpointing(checkpointing)  # as the trainer: SAM blocks (when they train), encoder, decoder
    return model


def lora_tiny(experts: bool, checkpointing=False, rank=4, dtype=torch.float32):
    """The tiny model with ocr2/lora.py's adapters (peft), as a LoRA run trains it."""
    from ocr2.lora import LoraSettings, apply_lora

    model = tiny(checkpointing=checkpointing, dtype=dtype)
    return apply_lora(model, LoraSettings(r=rank, experts=experts)).to(dtype).train()


def forward(model, length, crops=0, rows=1, dtype=torch.float32, answer=None):
    """One training forward on a real batch: `rows` samples of `length` positions, each a global view (+ crops),
    its `<image>` placeholders and text, labels on the text (on its last `answer` positions when given), an
    all-ones attention mask (as the collator gives)."""
    g = torch.Generator().manual_seed(length + crops)
    views = torch.rand(rows, 3, CFG.global_view_size, CFG.global_view_size, generator=g).to(dtype) * 2 - 1
    crop = (torch.rand(rows * crops, 3, CFG.crop_size, CFG.crop_size, generator=g).to(dtype) * 2 - 1) if crops else None
    n_image = CFG.image_token_count(crops)
    ids = torch.tensor([[CFG.bos_token_id] + [CFG.image_token_id] * n_image + [40] * (length - 1 - n_image)] * rows)
    labels = ids.clone()
    labels[:, :1 + n_image] = IGNORE_INDEX
    if answer is not None:
        labels[:, :length - answer] = IGNORE_INDEX
    return lambda: model(input_ids=ids, global_views=views, crops=crop, num_crops=[crops] * rows if crops else None,
                         attention_mask=torch.ones_like(ids), labels=labels)


def labelled(length: int, crops: int = 0, rows: int = 1) -> int:
    """The positions `forward` labels: every text position after the image placeholders (the first is never one)."""
    return rows * (length - 1 - CFG.image_token_count(crops))


def planned(setup: Setup, a=4, rows=1, crops=0) -> float:
    """The plan's saved bytes (no recompute term) for the same forward, the loss's saved part included."""
    t, ck = trains_for(setup), setup.checkpointing
    acts = [ab.decoder(CFG, t, a, rows * setup.seq_len, ck),
            ab.encoder(CFG, t, a, rows, CFG.global_view_size, ck),
            ab.vision(CFG, t, a, rows, CFG.global_view_size, "cpu_blocked", ck)]
    if crops:
        acts += [ab.encoder(CFG, t, a, rows * crops, CFG.crop_size, ck),
                 ab.vision(CFG, t, a, rows * crops, CFG.crop_size, "cpu_blocked", ck)]
    loss = ab.logits_loss(CFG.decoder.vocab_size, CFG.decoder.hidden_size, a, labelled(setup.seq_len, crops, rows),
                          t.lm_head)
    return sum(x.saved for x in acts) + loss["saved"]


def close(planned_value: float, measured: float) -> bool:
    return abs(planned_value - measured) <= TOL * measured


# ----------------------------------------------------------------------------------------- activations per token


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("checkpointing", [False, True])
def test_decoder_bytes_per_token_match_the_measured_slope(stage, checkpointing):
    model = tiny(STAGES[stage], checkpointing)
    short, long = 600, 1100
    m_short, m_long = saved_bytes(forward(model, short), model), saved_bytes(forward(model, long), model)
    s = lambda n: Setup(stage=stage, seq_len=n, views=1, checkpointing=checkpointing)  # noqa: E731
    slope_plan = (planned(s(long)) - planned(s(short))) / (long - short)
    slope_measured = (m_long - m_short) / (long - short)
    assert close(slope_plan, slope_measured), (slope_plan, slope_measured)
    assert close(planned(s(short)), m_short), (planned(s(short)), m_short)


@pytest.mark.parametrize("experts", [True, False])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_bytes_per_token_match_peft(experts, checkpointing):
    model = lora_tiny(experts, checkpointing)
    short, long = 600, 1100
    m_short, m_long = saved_bytes(forward(model, short), model), saved_bytes(forward(model, long), model)
    s = lambda n: Setup(mode="lora", seq_len=n, views=1, checkpointing=checkpointing, lora_rank=4,  # noqa: E731
                        lora_experts=experts)
    assert close((planned(s(long)) - planned(s(short))) / 500, (m_long - m_short) / 500)
    assert close(planned(s(short)), m_short), (planned(s(short)), m_short)


def test_bf16_decoder_matches_in_bf16():
    """fp32 upcasts (RMSNorm, router, expert sum) are separate tensors only when activations are bf16."""
    model = tiny(STAGES["stage3_decoder"], dtype=torch.bfloat16)
    measured = saved_bytes(forward(model, 700, dtype=torch.bfloat16), model)
    assert close(planned(Setup(stage="stage3_decoder", seq_len=700, views=1), a=BF16), measured)


def test_several_rows_and_crops():
    model = tiny(STAGES["stage2_query"])
    measured = saved_bytes(forward(model, 900, crops=3, rows=2), model)
    assert close(planned(Setup(stage="stage2_query", seq_len=900, views=4), rows=2, crops=3), measured)


# ----------------------------------------------------------------------------------------- activations per view


def _views_bytes(model, size, n):
    views = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(n)) * 2 - 1
    return saved_bytes(lambda: model.encode_views(views), model)


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("size", [1024, 768])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_vision_path_bytes_per_view(stage, size, checkpointing):
    """Tokenizer + encoder + projector for one more view of each size, per stage's freezing; with checkpointing
    the SAM blocks (stage 1) and the encoder layers keep only their inputs."""
    model = tiny(STAGES[stage], checkpointing)
    one, two = _views_bytes(model, size, 1), _views_bytes(model, size, 2)
    t = trains_for(Setup(stage=stage))

    def plan_views(n):
        return (ab.vision(CFG, t, 4, n, size, "cpu_blocked", checkpointing).saved
                + ab.encoder(CFG, t, 4, n, size, checkpointing).saved)

    assert close(plan_views(2) - plan_views(1), two - one), (plan_views(2) - plan_views(1), two - one)
    assert close(plan_views(1), one)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encoder_math_form_matches_sdpas_math_kernel(dtype):
    """What CUDA gives a dense mask with GQA (a mask spec without a two-call form): SDPA's math kernel, forced
    here on CPU."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = tiny(STAGES["stage2_query"], dtype=dtype)
    a = 4 if dtype == torch.float32 else BF16
    with sdpa_kernel(SDPBackend.MATH):
        one, two = (saved_bytes(lambda n=n: model.encode_views(torch.zeros(n, 3, 1024, 1024, dtype=dtype)), model)
                    for n in (1, 2))
    t = trains_for(Setup(stage="stage2_query"))
    plan_one, plan_two = (ab.encoder(CFG, t, a, n, 1024, False, "math").saved for n in (1, 2))
    assert close(plan_one, one) and close(plan_two - plan_one, two - one), (plan_one, one, plan_two, two)
    dense = dataclasses.replace(CFG, encoder=dataclasses.replace(CFG.encoder, mask="full_bidirectional"))
    assert encoder_attention_form(dense) == "math"  # no two-call form: the dense mask, 4/2 heads


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encoder_split_form_matches_sdpa_split(dtype):
    """The form CUDA runs for every backend (the default `sdpa` resolves to `sdpa_split` there): two mask-free
    calls. On CPU torch materialises the query call's bottom-right causal mask; CUDA's flash takes it as a flag."""
    cfg = dataclasses.replace(CFG, attn_implementation="sdpa_split")
    torch.manual_seed(0)
    model = OCR2Model(cfg).to(dtype).train()
    apply_freezing(model, list(STAGES["stage2_query"]))
    a = 4 if dtype == torch.float32 else BF16
    one, two = (saved_bytes(lambda n=n: model.encode_views(torch.zeros(n, 3, 1024, 1024, dtype=dtype)), model)
                for n in (1, 2))
    t = trains_for(Setup(stage="stage2_query"))
    plan_one, plan_two = (ab.encoder(cfg, t, a, n, 1024, False, "split_cpu").saved for n in (1, 2))
    assert close(plan_one, one) and close(plan_two - plan_one, two - one), (plan_one, one, plan_two, two)
    n_v, n_q = CFG.vision.tokens_for(1024), CFG.num_queries(1024)
    mask = CFG.encoder.num_layers * a * n_q * (n_v + n_q)
    assert ab.encoder(cfg, t, a, 1, 1024, False, "split").saved == plan_one - mask
    for backend in ("sdpa", "sdpa_split", "flash", "auto"):
        assert encoder_attention_form(dataclasses.replace(CFG, attn_implementation=backend)) == "split"
    assert encoder_attention_form(OCR2Config.from_preset("official")) == "split"


def test_frozen_stages_save_only_what_a_trainable_module_reads():
    """Stage 3 freezes the tokenizer and the encoder: only the projector's input (the encoder's whole final-norm
    output for one view) is kept, which the plan counts and nothing else."""
    model = tiny(STAGES["stage3_decoder"])
    n = CFG.vision.tokens_for(1024) + CFG.num_queries(1024)
    assert _views_bytes(model, 1024, 1) == 4 * CFG.encoder.hidden_size * n
    assert ab.vision(CFG, trains_for(Setup()), 4, 1, 1024).saved == 0


def test_checkpointing_reduces_activations_as_planned():
    full = tiny(STAGES["stage2_query"])
    ckpt = tiny(STAGES["stage2_query"], checkpointing=True)
    fwd = forward(full, 900, crops=2)
    m_off, m_on = saved_bytes(fwd, full), saved_bytes(forward(ckpt, 900, crops=2), ckpt)
    p_off = planned(Setup(stage="stage2_query", seq_len=900, views=3), crops=2)
    p_on = planned(Setup(stage="stage2_query", seq_len=900, views=3, checkpointing=True), crops=2)
    assert m_on < m_off / 3
    assert close(p_on / p_off, m_on / m_off), (p_on / p_off, m_on / m_off)
    # Recompute adds back one layer at a time: at most one layer's worth, never the whole stack.
    dec = ab.decoder(CFG, trains_for(Setup()), 4, 900, True)
    assert 0 < dec.recompute < ab.decoder(CFG, trains_for(Setup()), 4, 900, False).saved / 2


# ----------------------------------------------------------------------------------------- parameters and ZeRO


@pytest.mark.parametrize("stage", list(STAGES))
def test_parameter_counts_are_the_models(stage):
    model = tiny()
    frozen = apply_freezing(model, stage_frozen(stage))
    assert set(n.split(".")[0] for n in frozen) == set(STAGES[stage])
    c = count_parameters(CFG, Setup(stage=stage))
    assert c.total == sum(p.numel() for p in model.parameters())
    assert c.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_official_count_and_lora_adapters_match_peft():
    official = count_parameters(OCR2Config.from_preset("official"), Setup(stage="stage1_encoder"))
    assert official.total == official.trainable == 3_389_119_360
    base = tiny()
    # r (in + out) per adapted matrix: every decoder-layer Linear, and each of the E stacked expert matrices.
    linear = sum(4 * (m.in_features + m.out_features) for n, m in base.named_modules()
                 if n.startswith("decoder.layers.") and isinstance(m, torch.nn.Linear))
    stacked = sum(4 * p.shape[0] * (p.shape[1] + p.shape[2]) for n, p in base.named_parameters() if ".experts." in n)
    for experts in (True, False):
        peft_model = lora_tiny(experts)
        c = count_parameters(CFG, Setup(mode="lora", lora_rank=4, lora_experts=experts))
        assert c.trainable == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert c.trainable == linear + (stacked if experts else 0)
        assert c.total == sum(p.numel() for p in peft_model.parameters())


BF16_ACCUM = DeepSpeedSizes(fp32_grad_accum=False)  # DeepSpeed's bf16 defaults: accumulation and reduction in bf16


def test_zero_partitions_the_right_terms():
    c = count_parameters(OCR2Config.from_preset("official"), Setup(stage="stage3_decoder"))
    t, total = c.trainable, c.total
    one = {z: model_states(c, z, 1, BF16_ACCUM) for z in range(4)}
    eight = {z: model_states(c, z, 8, BF16_ACCUM) for z in range(4)}
    assert one[0] == eight[0]  # ZeRO 0 replicates everything
    assert eight[1]["weights"] == eight[2]["weights"] == 2 * total  # weights whole until ZeRO 3
    assert eight[1]["optimizer"] == 12 * t / 8 and one[0]["optimizer"] == 12 * t  # master + 2 moments, fp32
    assert eight[1]["grads"] == 2 * t + 2 * t / 8 and eight[1]["grads_step"] == 2 * t / 8
    assert eight[2]["grads"] == eight[3]["grads"] == 2 * t / 8
    persistent = c.persistent
    assert 0 < persistent < total / 1000
    assert eight[3]["weights"] == 2 * (persistent + (total - persistent) / 8)
    assert one[2]["step"] == 8 * t and eight[2]["step"] == 8 * t / 8  # fp32 grad copy + foreach sqrt


def test_fp32_gradient_accumulation_buffer_is_partitioned_from_zero_2():
    """The trainer's bf16 default (grad_accum_dtype=fp32): ZeRO 1 adds a whole fp32 gradient buffer beside the bf16
    grads; ZeRO 2 and 3 keep their gradient partition in fp32 instead of bf16."""
    c = count_parameters(OCR2Config.from_preset("official"), Setup(stage="stage3_decoder"))
    t = c.trainable
    fp32 = {z: model_states(c, z, 8) for z in range(4)}
    bf16 = {z: model_states(c, z, 8, BF16_ACCUM) for z in range(4)}
    assert fp32[0] == bf16[0]  # DeepSpeed refuses fp32 accumulation at ZeRO 0
    assert fp32[1]["grads"] == fp32[1]["grads_step"] == 2 * t + 4 * t  # bf16 grads kept + whole fp32 buffer
    assert fp32[2]["grads"] == fp32[3]["grads"] == 4 * t / 8
    assert fp32[2]["grads_step"] == fp32[3]["grads_step"] == 4 * t / 8
    assert fp32[1]["step"] == 4 * t / 8  # the fp32 grad partition is a view: AdamW's sqrt only
    for z in (1, 2, 3):  # weights and optimizer states do not depend on the accumulation dtype
        assert (fp32[z]["weights"], fp32[z]["optimizer"]) == (bf16[z]["weights"], bf16[z]["optimizer"])


def test_buffers_follow_deepspeed_defaults():
    c = count_parameters(OCR2Config.from_preset("official"), Setup(mode="lora"))
    assert buffers(c, 2, BF16_ACCUM) == buffers(c, 1, BF16_ACCUM) == 2 * 5e8  # full size even for a few adapters
    assert buffers(c, 0) == 2 * c.trainable  # all adapters fit one all-reduce bucket
    assert buffers(c, 3, BF16_ACCUM) == 2 * (5e8 + c.largest_module + 5e7)
    assert _allreduce_bucket((3, 3, 3, 3), 5) == 6 and _allreduce_bucket((10, 1), 5) == 10
    assert buffers(c, 2, DeepSpeedSizes(reduce_bucket_size=10, fp32_grad_accum=False)) == 20


def test_buffers_reduce_in_fp32_as_the_trainer_sets_it():
    c = count_parameters(OCR2Config.from_preset("official"), Setup(mode="lora"))
    assert buffers(c, 2) == 4 * 5e8  # communication_data_type=fp32: the reduce bucket is fp32
    assert buffers(c, 3) == 4 * 5e8 + 2 * (c.largest_module + 5e7)  # gathered weights stay bf16
    assert buffers(c, 1) == 0  # BF16_Optimizer all-reduces its fp32 gradient buffers in place


def test_meta_model_builds_without_memory():
    model = meta_model(OCR2Config.from_preset("official"))
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_loss_bytes_per_answer_token_match_the_measured_slope(mode):
    """The head and loss run on labelled positions only: what a forward saves grows with the answer tokens, not
    with the sequence. Head trains (stage 3): its chunks are checkpointed (hidden state, targets, indices per
    answer token); head frozen (LoRA): each chunk keeps its log-softmax."""
    model = tiny(STAGES["stage3_decoder"]) if mode == "full" else lora_tiny(True)
    few, many, length = 100, 500, 900
    m_few, m_many = (saved_bytes(forward(model, length, answer=n), model) for n in (few, many))
    setup = Setup(mode=mode, stage="stage3_decoder", seq_len=length, views=1, lora_rank=4)
    t = trains_for(setup)

    def loss(n):
        return ab.logits_loss(CFG.decoder.vocab_size, CFG.decoder.hidden_size, 4, n, t.lm_head)["saved"]

    assert close((loss(many) - loss(few)) / (many - few), (m_many - m_few) / (many - few))
    # The rest of the forward does not depend on the labels: planned with `many` labelled positions.
    assert close(planned(setup) - loss(labelled(length)) + loss(many), m_many)
    per_token = (m_many - m_few) / (many - few)
    expected = 4 * CFG.decoder.hidden_size + 24 if mode == "full" else 4 * CFG.decoder.vocab_size + 24
    assert close(per_token, expected), (per_token, expected)


def test_loss_terms_depend_on_answer_tokens_not_sequence_length():
    cfg = OCR2Config.from_preset("official")
    v, h = cfg.decoder.vocab_size, cfg.decoder.hidden_size
    trains, frozen = (ab.logits_loss(v, h, BF16, 2048, head) for head in (True, False))
    assert trains == {"saved": (2 * h + 24) * 2048, "transient": 3 * 4 * v * 1024}  # one chunk recomputed
    assert frozen == {"saved": (4 * v + 24) * 2048 + 4 * 2, "transient": 2 * 4 * v * 1024}  # 2 chunks
    assert ab.logits_loss(v, h, BF16, 300, True)["transient"] == 3 * 4 * v * 300  # a partial chunk
    base = Setup(stage="stage3_decoder", seq_len=4096, answer_tokens=1024)
    assert logits_loss(cfg, base) == logits_loss(cfg, dataclasses.replace(base, seq_len=8192))
    assert logits_loss(cfg, dataclasses.replace(base, micro_batch=2))["saved"] == 2 * logits_loss(cfg, base)["saved"]
    assert plan(cfg, base).logits == sum(logits_loss(cfg, base).values())
    assert logits_loss(cfg, dataclasses.replace(base, mode="lora")) == {"saved": (4 * v + 24) * 1024 + 4,
                                                                        "transient": 2 * 4 * v * 1024}
    # Capped at the text positions: 7 views take 1121 of 2048, the first position is never a target.
    assert answer_positions(cfg, dataclasses.replace(base, seq_len=2048)) == 2048 - 1 - 1121
    assert answer_positions(cfg, base) == 1024
    with pytest.raises(ValueError):
        Setup(answer_tokens=0)


# ----------------------------------------------------------------------------------------- the command


def test_cli_prints_the_table(capsys):
    assert main(["--mode", "full,lora", "--zero", "0,2,3", "--gpus", "1,8", "--checkpointing", "on,off",
                 "--seq-len", "4096"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| full |") or line.startswith("| LoRA")]
    memory_rows = [r for r in rows if r.count("|") > 15]
    assert len(memory_rows) == (3 + 1) * 3 * 2 * 2
    assert "| 16 GB | 24 GB | 40 GB | 80 GB |" in out and "**peak**" in out
    assert all(r.rstrip(" |").split("|")[-1].strip() in ("yes", "tight", "no") for r in memory_rows)
    assert "3,389,119,360" in out


def test_cli_reads_a_model_config_and_sweeps_shapes(tmp_path, capsys):
    CFG.save(tmp_path / "config.json")
    assert main(["--model", str(tmp_path), "--mode", "lora", "--zero", "2", "--gpus", "1", "--checkpointing", "off",
                 "--seq-len", "300,600", "--views", "1,3"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "config.json") in out
    assert "| seq | views |" in out
    assert "seq 300 with 3 views" in out  # 545 image positions leave no text: said, not planned


def test_cli_attention_backend_and_mask_set_the_encoder_form(tmp_path, capsys):
    """On CUDA every backend runs the official mask as two mask-free calls; a mask spec without that form gets
    the dense mask, which with grouped-query heads means SDPA's math kernel (fp32 probabilities)."""
    args = ["--mode", "full", "--stage", "stage2_query", "--zero", "2", "--gpus", "8", "--checkpointing", "off"]
    official = OCR2Config.from_preset("official")
    dense = dataclasses.replace(official, encoder=dataclasses.replace(official.encoder, mask="full_bidirectional"))
    dense.save(tmp_path / "config.json")
    assert main(args) == 0 and main(args + ["--attn-implementation", "flash"]) == 0
    assert main(args + ["--model", str(tmp_path)]) == 0
    sdpa, flash, math_form = (out for out in capsys.readouterr().out.split("# ocr2-plan")[1:])

    def view(out):  # the global view's MiB in the per-view table
        row = next(r for r in out.splitlines() if r.startswith("| full | stage2_query | off |"))
        return float(row.split("|")[8])

    assert view(flash) == view(sdpa) < view(math_form)
    assert "split form" in sdpa and "split form" in flash and "math form" in math_form


def test_cli_answer_tokens_set_the_loss_column(capsys):
    args = ["--mode", "lora", "--zero", "2", "--gpus", "1", "--checkpointing", "on", "--seq-len", "2048,4096"]
    assert main(args + ["--answer-tokens", "256,1024"]) == 0
    out = capsys.readouterr().out
    assert "| seq | answer |" in out and "926 for seq 2048 with 7 views" in out  # 1024 capped at the text room
    rows = [r.split("|") for r in out.splitlines() if r.startswith("| LoRA") and r.count("|") > 15]
    loss = {(int(r[6]), int(r[7])): float(r[12]) for r in rows}
    assert loss[(2048, 256)] == loss[(4096, 256)] < loss[(2048, 926)] < loss[(4096, 1024)]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--preset", "tiny", "--seq-len", "100", "--views", "3"]) == 2
    assert "no setup leaves room for text" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--zero", "4"])


def test_plan_peak_takes_the_larger_phase():
    p = plan(OCR2Config.from_preset("official"), Setup(stage="stage3_decoder", zero=2, gpus=1))
    backward = p.grads + p.activation_bytes + p.logits + p.buffers
    assert p.peak == p.weights + p.optimizer + max(backward, p.grads_step + p.step)
