"""ocr2-bench's sizes and decode-step timer (eval/bench/model.py, eval/bench/decode_step.py); no timings asserted."""

import pytest
import torch

from eval.bench.decode_step import step_pair
from eval.bench.model import SIZES, build_pair, ours_config, port_config
from eval.bench.timing import time_calls
from ocr2 import OCR2Model
from ocr2.keymaps import port as port_keys


def test_official_shallow_builds_both_models_and_the_key_map_covers_every_weight():
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    pcfg = port_config("official-shallow")
    cfg = ours_config(pcfg, "auto")
    # the released widths and geometry, 2 layers per stack
    assert (cfg.vision.width, cfg.vision.depth, cfg.vision.global_attn_indexes) == (768, 2, (1,))
    assert (cfg.encoder.hidden_size, cfg.encoder.num_layers, cfg.encoder.num_heads, cfg.encoder.num_kv_heads) == (
        896, 2, 14, 2)
    d = cfg.decoder
    assert (d.hidden_size, d.num_layers, d.first_k_dense, d.n_routed_experts, d.num_experts_per_tok,
            d.n_shared_experts, d.vocab_size) == (1280, 2, 1, 64, 6, 2, 129_280)
    assert (cfg.global_view_size, cfg.crop_size, cfg.image_token_count(2)) == (1024, 768, 2 * 144 + 256 + 1)
    with torch.device("meta"):  # shapes only: 653 M parameters would take seconds and gigabytes
        port = DeepseekOcr2ForConditionalGeneration(pcfg)
        ours = OCR2Model(cfg)
    state = port.state_dict()
    unexpected: list[str] = []
    converted = dict(port_keys.convert(list(state), state.__getitem__, unexpected))
    assert unexpected == []
    ours_state = ours.state_dict()
    assert sorted(converted) == sorted(ours_state)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in ours_state.items()}
    assert 600e6 < sum(p.numel() for p in ours.parameters()) < 700e6


def test_every_size_keeps_valid_global_attention_indexes():
    for name, size in SIZES.items():
        sam = size["sam"]
        assert all(0 <= i < sam["num_hidden_layers"] for i in sam["global_attn_indexes"]), name


@pytest.mark.parametrize("cache_len", [37, 300])
def test_decode_step_runs_each_side_over_a_cache_of_exactly_the_length(cache_len):
    ours, port = build_pair("tiny", "auto", "cpu", torch.float32)
    seen = {"ours": [], "port": []}

    def ours_hook(module, args, kwargs):
        seen["ours"].append((len(kwargs["cache"]), kwargs["position_ids"].tolist(), kwargs["inputs_embeds"].shape[1]))

    def port_hook(module, args, kwargs):
        seen["port"].append((kwargs["cache"].get_seq_length(), kwargs["position_ids"].tolist(),
                             kwargs["input_ids"].shape[1]))

    ours.register_forward_pre_hook(ours_hook, with_kwargs=True)
    port.register_forward_pre_hook(port_hook, with_kwargs=True)
    pair = step_pair(ours, port, cache_len, batch=2)
    time_calls(pair.fns, 3, "cpu", pair.setups)
    # warm-up + 3 repeats, each one new token per row over exactly cache_len cached positions
    expected = [(cache_len, [[cache_len]] * 2, 1)] * 4
    assert seen["ours"] == expected and seen["port"] == expected
    # each step appended its token (the attention ran over cache_len + 1 keys); the untimed rewind restores it
    ours_cache, port_cache = pair.caches
    assert len(ours_cache) == cache_len + 1 and port_cache.get_seq_length() == cache_len + 1
    assert ours_cache.keys[0].shape[0] == 2 and port_cache.layers[0].keys.shape[:3] == (2, 4, cache_len + 1)
    for rewind in pair.setups:
        rewind()
    assert len(ours_cache) == cache_len and port_cache.get_seq_length() == cache_len
