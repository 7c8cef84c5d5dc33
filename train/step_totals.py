"""One optimizer step's micro-batches without host syncs: every per-micro-batch figure stays a device tensor.

The trainer used to read each micro-batch's loss, aux loss, token count and finiteness back to the host (4+ syncs
per micro-batch, each a stall of the GPU queue on CUDA). Here a micro-batch only adds device tensors:
- whether its loss is finite on every rank, all-reduced (MIN) on the device, asynchronously;
- the loss it backpropagates: the real one, or zero through its own graph when any rank's loss is not finite (a
  skipped micro-batch still runs backward, so DeepSpeed's hooks, ZeRO-3's fetches and the accumulation counters stay
  in step on every rank);
- its loss, aux loss and tokens, summed.
The host reads twice per step, whatever the accumulation: the all-ranks finiteness before the boundary optimizer
step (which is skipped when any micro-batch was not finite), and the step's totals, summed over ranks in one
all-reduce, for the log line.
"""

from __future__ import annotations

import torch
import torch.distributed as tdist


def _all_reduce(t: torch.Tensor, op) -> torch.Tensor:
    if tdist.is_initialized() and tdist.get_world_size() > 1:
        device = t.device
        if tdist.get_backend() == "nccl" and device.type != "cuda":
            t = t.cuda()
        tdist.all_reduce(t, op=op)
        t = t.to(device)
    return t


class StepTotals:
    def __init__(self, device: torch.device):
        self.device = device
        self.finite = torch.ones((), dtype=torch.float32, device=device)  # 1 while every micro-batch is finite
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, loss count, aux sum, aux count
        self.tokens = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, lm_loss: torch.Tensor, aux_loss: torch.Tensor | None,
            tokens: torch.Tensor) -> torch.Tensor:
        """Account one micro-batch; returns the loss to backpropagate (zero when any rank's loss is not finite)."""
        ok = _all_reduce(torch.isfinite(loss.detach()).to(torch.float32), tdist.ReduceOp.MIN)
        self.finite = torch.minimum(self.finite, ok)
        one = torch.ones((), dtype=torch.float64, device=self.device)
        aux = (aux_loss.detach().double(), one) if aux_loss is not None else (one * 0, one * 0)
        # A non-finite micro-batch adds no loss (nan_to_num keeps its NaN out of the sum before the weight 0).
        self.sums = self.sums + torch.stack([torch.nan_to_num(lm_loss.detach().double()), one, *aux]) * ok.double()
        self.tokens = self.tokens + tokens.to(torch.float64)
        # Zero through the graph: nan_to_num keeps the zero from being NaN; where() picks it on every rank alike.
        return torch.where(ok.bool(), loss, torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0) * 0.0)

    def all_finite(self) -> bool:
        """Host sync 1 of the step: were all micro-batches finite on every rank?"""
        return bool(self.finite.item())

    def read(self, stop: bool = False) -> dict[str, float | None]:
        """Host sync 2 of the step: mean loss and aux loss over ranks and micro-batches, tokens over ranks, and
        whether any rank asked to stop (`stop`: a pre-emption signal), all in one all-reduce."""
        flag = torch.full((1,), float(stop), dtype=torch.float64, device=self.device)
        totals = _all_reduce(torch.cat([self.sums, self.tokens[None], flag]), tdist.ReduceOp.SUM)
        loss_sum, n, aux_sum, n_aux, tokens, stops = totals.tolist()
        return {"loss": loss_sum / n if n else float("nan"), "aux_loss": aux_sum / n_aux if n_aux else None,
                "tokens": int(tokens), "stop": stops > 0}
