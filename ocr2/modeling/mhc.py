"""Hyper-connections as a residual option: `hc` (unconstrained) and `mhc` (manifold-constrained, arXiv 2512.24880).

The residual stream widens from C to n x C ("streams"). Around each sub-layer F (attention or feed-forward):

    x_{l+1} = H_res · x_l + H_post^T · F(H_pre · x_l)

with per-token coefficients computed from an RMSNorm of the flattened n·C stream (paper Eq. 7-9):
    mhc: H_pre = sigmoid(a_pre·x'phi_pre + b_pre), H_post = 2·sigmoid(a_post·x'phi_post + b_post),
         H_res = Sinkhorn-Knopp(exp(a_res·mat(x'phi_res) + b_res)) — doubly stochastic, so the composite of many
         layers stays non-expansive;
    hc:  H = a·tanh(x'phi) + b for all three, unconstrained (the composite gain can grow without bound).

Initialisation (ours; the paper does not state one): a = 0.01, phi = 0 and biases chosen so that a fresh model
computes exactly what the plain residual model computes. The input embedding is copied to every stream and the
output is the mean over streams; with phi = 0 every stream stays equal to the plain residual stream as long as
sum(H_pre) = 1 (b_pre = logit(1/n) for mhc, 1/n for hc), H_post = 1 (b_post = 0 for mhc, 1 for hc) and H_res
is row-stochastic (any Sinkhorn output; the identity for hc). Gradients reach phi through a, so it learns.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

RESIDUALS = ("residual", "hc", "mhc")


def sinkhorn_knopp(logits: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Doubly stochastic matrix from exp(logits) (..., n, n): alternate column and row normalisation `iters`
    times, ending on rows, so row sums are exact and column sums carry the truncation error (mHC paper §5.4)."""
    m = torch.exp(logits - logits.amax(dim=(-2, -1), keepdim=True))  # shift: same result, no overflow
    for _ in range(iters):
        m = m / m.sum(dim=-2, keepdim=True)
        m = m / m.sum(dim=-1, keepdim=True)
    return m


class HyperConnection(nn.Module):
    """One sub-layer's hyper-connection over `n` streams of width `dim`."""

    def __init__(self, dim: int, n: int = 4, kind: str = "mhc", sinkhorn_iters: int = 20, alpha: float = 0.01,
                 eps: float = 1e-6):
        super().__init__()
        if kind not in ("hc", "mhc"):
            raise ValueError(f"hyper-connection kind must be 'hc' or 'mhc', got {kind!r}")
        self.n, self.kind, self.iters, self.eps = n, kind, sinkhorn_iters, eps
        self.norm_weight = nn.Parameter(torch.ones(n * dim))
        self.phi = nn.Parameter(torch.zeros(n * dim, 2 * n + n * n))
        self.alpha = nn.Parameter(torch.full((3,), alpha))
        self.bias = nn.Parameter(self._identity_bias(n, kind))

    @staticmethod
    def _identity_bias(n: int, kind: str) -> torch.Tensor:
        if kind == "mhc":
            pre = torch.full((n,), math.log(1.0 / (n - 1))) if n > 1 else torch.full((1,), 20.0)
            post = torch.zeros(n)  # 2·sigmoid(0) = 1
            res = torch.zeros(n * n)  # Sinkhorn(exp(0)) = uniform 1/n: row-stochastic, keeps equal streams equal
        else:
            pre, post, res = torch.full((n,), 1.0 / n), torch.ones(n), torch.eye(n).flatten()
        return torch.cat([pre, post, res])

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (..., n, C) -> H_pre (..., n), H_post (..., n), H_res (..., n, n), in fp32."""
        n = self.n
        flat = x.flatten(-2).float()
        normed = flat * torch.rsqrt(flat.pow(2).mean(-1, keepdim=True) + self.eps) * self.norm_weight.float()
        mix = normed @ self.phi.float()
        a_pre, a_post, a_res = self.alpha.float()
        b = self.bias.float()
        if self.kind == "mhc":
            pre = torch.sigmoid(a_pre * mix[..., :n] + b[:n])
            post = 2.0 * torch.sigmoid(a_post * mix[..., n:2 * n] + b[n:2 * n])
            res = sinkhorn_knopp((a_res * mix[..., 2 * n:] + b[2 * n:]).unflatten(-1, (n, n)), self.iters)
        else:
            pre = a_pre * torch.tanh(mix[..., :n]) + b[:n]
            post = a_post * torch.tanh(mix[..., n:2 * n]) + b[n:2 * n]
            res = (a_res * torch.tanh(mix[..., 2 * n:]) + b[2 * n:]).unflatten(-1, (n, n))
        return pre, post, res

    def forward(self, x: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        pre, post, res = self.coefficients(x)
        h = torch.einsum("...n,...nc->...c", pre.to(x.dtype), x)
        y = branch(h)
        mixed = torch.einsum("...ij,...jc->...ic", res.to(x.dtype), x)
        return mixed + post.to(x.dtype).unsqueeze(-1) * y.unsqueeze(-2)


def expand_streams(x: torch.Tensor, n: int) -> torch.Tensor:
    """(..., C) -> (..., n, C): every stream starts as the embedding."""
    return x.unsqueeze(-2).expand(*x.shape[:-1], n, x.shape[-1]).contiguous()


def reduce_streams(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=-2)
