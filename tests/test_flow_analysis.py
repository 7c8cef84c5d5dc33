"""Flow analysis: query attention over visual tokens respects the mask and drives the encoder unchanged."""

import torch
from PIL import Image

from ocr2 import OCR2Config, OCR2Model
from eval.research.flow_analysis import flow_attention, reading_path


def _model():
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.encoder.query_view_sizes = 256, (256,)
    return OCR2Model(cfg).eval()


def test_flow_attention_shapes_and_rows_sum_to_at_most_one():
    model = _model()
    attn = flow_attention(model, torch.rand(1, 3, 256, 256) * 2 - 1)
    assert attn.shape == (2, 1, 16, 16)  # layers, batch, queries, visual tokens
    assert (attn.sum(-1) <= 1 + 1e-5).all()  # the rest of each row goes to earlier queries
    assert reading_path(attn[0, 0]).shape == (16,)


def test_hooked_encoder_output_equals_the_normal_encoder():
    model = _model()
    views = torch.rand(1, 3, 256, 256) * 2 - 1
    visual = model.vision_tokenizer(views)
    seen = []

    def attend(q, k, v, n_visual):
        seen.append(n_visual)
        from ocr2.modeling.attention import encoder_attention
        return encoder_attention(q, k, v, model.encoder.spec, n_visual, backend="eager")

    hooked = model.encoder(visual, 256, attend=attend)
    assert seen == [16, 16]
    assert torch.allclose(hooked, model.encoder(visual, 256), atol=1e-5)


def test_flow_plot_writes_a_png(tmp_path):
    from eval.research.flow_plot import plot

    out = plot(_model(), Image.new("RGB", (300, 200), "white"), tmp_path / "flow.png")
    assert out.stat().st_size > 1000
