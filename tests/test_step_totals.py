"""A training step's micro-batches are accounted without host syncs (counted as CUDA would sync, on CPU): none per
micro-batch, two per step; a non-finite micro-batch backpropagates zero and adds nothing to the logged loss."""

from __future__ import annotations

import torch

from sync_ops import SyncCounter
from train.step_totals import StepTotals


def _micro(totals: StepTotals, w: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    loss = (w * w).sum() * scale
    return totals.add(loss, loss, loss * 0.01, torch.tensor(7))


def test_no_host_sync_per_micro_batch_and_two_per_step():
    w = torch.ones(3, requires_grad=True)
    totals = StepTotals(torch.device("cpu"))
    with SyncCounter() as counter:
        for _ in range(4):
            _micro(totals, w).backward()
    assert counter.total == 0, counter.counts
    with SyncCounter() as counter:
        assert totals.all_finite()
    assert counter.total == 1
    figures = totals.read()  # .tolist(): one readback (not an aten op, so not countable here)
    assert figures["loss"] == 3.0 and figures["tokens"] == 28
    assert abs(figures["aux_loss"] - 0.03) < 1e-7


def test_a_non_finite_micro_batch_backpropagates_zero_and_is_not_logged():
    w = torch.ones(3, requires_grad=True)
    totals = StepTotals(torch.device("cpu"))
    _micro(totals, w).backward()
    bad = _micro(totals, w, float("nan"))
    assert bad.item() == 0.0
    before = w.grad.clone()
    bad.backward()
    assert torch.equal(torch.nan_to_num(w.grad - before), torch.zeros(3))
    assert not totals.all_finite()
    assert totals.read()["loss"] == 3.0 and totals.read()["tokens"] == 14
