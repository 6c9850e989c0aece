"""Asymmetric batch normalisation for contrastive pairs (CCP; Wu et al., IJCAI 2022).

Wu et al. 2022, "Unsupervised Context Aware Sentence Representation Pretraining for Multi-lingual
Dense Retrieval" (arXiv:2206.03281) put batch normalisation on the projection of the sentence
embeddings to keep contrastive training from collapsing, and make it asymmetric because ordinary batch
normalisation on both sides of a pair leaks information between the rows of a batch (the statistics
of the batch that holds the positive reach every candidate), which the model can exploit instead of
learning the context relation.

Here the anchor side is normalised with the statistics of its own batch (and updates the running
statistics), the positive side with the running statistics only, so no row of the positive side
depends on the other rows of its batch. In evaluation mode both sides use the running statistics,
so an embedding never depends on what else is in the batch. Hand-written: ``nn.BatchNorm1d`` has one
behaviour per mode, and this needs the two behaviours at once, sharing one set of statistics.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Side = Literal["anchor", "positive"]


class AsymmetricBatchNorm(nn.Module):
    """``BatchNorm1d`` over ``(batch, dim)`` whose batch statistics are used for the anchor side only."""

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.dim, self.momentum, self.eps = dim, momentum, eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: Tensor, side: Side) -> Tensor:
        if side not in ("anchor", "positive"):
            raise ValueError(f"side must be 'anchor' or 'positive', got {side!r}")
        batch_statistics = self.training and side == "anchor" and x.size(0) > 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=batch_statistics, momentum=self.momentum, eps=self.eps)

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set the running statistics to those of ``x`` (``(rows, dim)``).

        The positive side is normalised with the running statistics from the first step on; left at
        their initial (0, 1) they would not match the anchor side's batch statistics until the moving
        average has caught up, and those first steps' gradients would train against a mismatch.
        """
        if x.dim() != 2 or x.size(1) != self.dim or x.size(0) < 2:
            raise ValueError(f"calibrate needs (rows >= 2, {self.dim}) inputs, got {tuple(x.shape)}")
        self.running_mean.copy_(x.mean(0))
        self.running_var.copy_(x.var(0))

    def extra_repr(self) -> str:
        return f"{self.dim}, momentum={self.momentum}, eps={self.eps}, affine={self.weight is not None}"
