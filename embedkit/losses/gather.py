"""Gathering embeddings across processes with gradients, for in-batch negatives over the global batch.

Hand-written rather than ``torch.distributed.nn.all_gather`` (which sentence-transformers uses) because
that requires every process to hold the same number of rows, while the last batch of an epoch is often
smaller on some processes. Here the row counts are exchanged first, rows are padded for the collective
and trimmed after it.

Gradients: process ``r``'s loss depends on every process's rows, so the gradient of a local row is the
sum over processes of ``d loss_p / d row``. The backward pass all-reduces (sums) the gathered gradient
and keeps the local slice, so each process's embeddings receive the gradient of the sum of all
processes' losses, and the local rows keep their autograd connection to the local model.

Alignment with a hard-negative column: each column is gathered on its own, so that after gathering row
``g`` of the anchors, of the positives and of every negative column still belong to the same example.
(Concatenating ``[positives; negatives]`` locally and then gathering would interleave the processes'
blocks and pair anchors with the wrong negatives.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _row_counts(rows: int, device: torch.device) -> list[int]:
    count = torch.tensor([rows], device=device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    return [int(c.item()) for c in counts]


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every process's ``(rows_p, ...)`` tensor; the backward pass sums gradients over processes."""

    @staticmethod
    def forward(ctx, tensor: Tensor, counts: list[int]) -> Tensor:  # noqa: D102 (see the class docstring)
        rank = dist.get_rank()
        longest = max(counts)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: tensor.size(0)] = tensor
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        ctx.start = sum(counts[:rank])
        ctx.rows = counts[rank]
        return torch.cat([part[:count] for part, count in zip(parts, counts)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start: ctx.start + ctx.rows], None


def all_gather_with_grad(tensor: Tensor) -> tuple[Tensor, slice]:
    """Gather ``tensor`` (rows may differ per process) from all processes, keeping gradients.

    Returns the concatenation in rank order and the slice of it that holds this process's rows.
    Without an initialised process group (or with a single process) it returns ``tensor`` unchanged.
    """
    if not is_distributed():
        return tensor, slice(0, tensor.size(0))
    counts = _row_counts(tensor.size(0), tensor.device)
    start = sum(counts[: dist.get_rank()])
    return _AllGatherWithGrad.apply(tensor, counts), slice(start, start + tensor.size(0))


def gather_columns(columns: Sequence[Tensor]) -> tuple[list[Tensor], slice, int]:
    """Gather each batch column (anchor, positive, negatives...) across processes, rows kept aligned.

    Returns the gathered columns, the slice of rows this process owns (the same slice in every column)
    and the world size (1 when not distributed).
    """
    rows = {column.size(0) for column in columns}
    if len(rows) != 1:
        raise ValueError(f"all batch columns must have the same number of rows, got {sorted(rows)}")
    gathered = [all_gather_with_grad(column) for column in columns]
    world_size = dist.get_world_size() if is_distributed() else 1
    return [tensor for tensor, _ in gathered], gathered[0][1], world_size
