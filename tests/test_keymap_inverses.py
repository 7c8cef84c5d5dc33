"""The export key maps are the inverses of the load key maps, key by key (ocr2/keymaps/)."""

from __future__ import annotations

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.keymaps import official, port, sam


@pytest.fixture(scope="module")
def state():
    return OCR2Model(OCR2Config.from_preset("tiny")).state_dict()


def _round_trip(to_entries, convert, state):
    unexpected: list[str] = []
    written = {e.name: e.make() for e in to_entries(state, None, unexpected)}
    assert not unexpected
    back_unexpected: list[str] = []
    back = dict(convert(list(written), written.__getitem__, back_unexpected))
    assert not back_unexpected
    return back


def test_official_names_read_back_to_every_key_and_tensor(state):
    back = _round_trip(official.to_official, official.convert, state)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_port_names_read_back_to_every_key_and_tensor(state):
    back = _round_trip(port.to_port, port.convert, state)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_sam_inverse_undoes_the_port_map(state):
    keys = [k[len("vision_tokenizer."):] for k in state if k.startswith("vision_tokenizer.")]
    assert [sam.port_to_ours(sam.ours_to_port(k)) for k in keys] == keys


def test_a_key_the_layout_has_no_name_for_is_reported(state):
    unexpected: list[str] = []
    port.to_port({"encoder.flow_queries.512": torch.zeros(1)}, None, unexpected)
    assert unexpected == ["encoder.flow_queries.512"]
