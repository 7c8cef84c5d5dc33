"""init_from takes a from_pretrained directory or a training run (its latest checkpoint), e.g. the demo's run."""

from __future__ import annotations

import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.weights import resolve_model_dir
from train.init_model import _load_weights


def test_init_from_a_run_directory_loads_its_latest_checkpoint_and_keeps_new_query_tables(tmp_path):
    torch.manual_seed(0)
    source = OCR2Model(OCR2Config.from_preset("tiny"))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    source.save_pretrained(tmp_path / "run" / "checkpoints" / "step_000002" / "model")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step_000002")

    cfg = OCR2Config.from_preset("tiny")
    cfg.encoder.query_view_sizes = (512, *cfg.encoder.query_view_sizes)  # a view size the source never had
    torch.manual_seed(1)
    target = OCR2Model(cfg)
    fresh = target.encoder.flow_queries["512"].detach().clone()
    run = resolve_model_dir(tmp_path / "run")
    _load_weights(target, OCR2Model.from_pretrained(run), run, ["vision_tokenizer", "encoder", "projector",
                                                                "view_separator", "decoder", "lm_head"])
    assert torch.equal(target.decoder.state_dict()["embed_tokens.weight"], source.decoder.state_dict()["embed_tokens.weight"])
    assert torch.equal(target.encoder.flow_queries["1024"], source.encoder.flow_queries["1024"])
    assert torch.equal(target.encoder.flow_queries["512"], fresh)


def test_a_run_without_flow_queries_takes_everything_but_the_checkpoints_query_tables(tmp_path):
    # e.g. fine-tuning the demo's causal_flow reader with mask=raster (docs/ablations/order): no query tables to fill
    torch.manual_seed(0)
    source = OCR2Model(OCR2Config.from_preset("tiny"))
    source.save_pretrained(tmp_path / "model")
    cfg = OCR2Config.from_preset("tiny")
    cfg.encoder.mask = "raster"
    target = OCR2Model(cfg)
    _load_weights(target, OCR2Model.from_pretrained(tmp_path / "model"), tmp_path / "model", None)
    theirs = source.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in target.state_dict().items())
    assert not any(k.startswith("encoder.flow_queries.") for k in target.state_dict())
