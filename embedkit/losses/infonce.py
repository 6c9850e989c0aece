"""InfoNCE with in-batch negatives, an optional hard-negative column and an optional symmetric term.

The math lives in :func:`info_nce_per_anchor`, a pure function of embeddings, so that the plain loss
(:class:`InfoNCELoss`), the cross-process gathered loss and the GradCache loss
(:class:`embedkit.losses.cached.CachedInfoNCELoss`) and DebCSE all compute exactly the same thing.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import cos_sim as cosine
from torch import Tensor, nn

from embedkit.losses.gather import gather_columns

SimilarityFn = Callable[[Tensor, Tensor], Tensor]


def _as_list(negatives: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    if negatives is None:
        return []
    if isinstance(negatives, Tensor):
        return [negatives]
    return list(negatives)


def info_nce_per_anchor(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | Sequence[Tensor] | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 1.0,
    symmetric: bool = False,
    scale_fn: SimilarityFn = cosine,
    rows: slice | None = None,
    logit_bias: Tensor | None = None,
) -> Tensor:
    """Per-anchor InfoNCE losses, shape ``(number of rows,)``.

    ``anchors``, ``positives`` and every tensor in ``negatives`` are ``(N, D)`` and aligned by row:
    row ``g`` of each is anchor ``g``'s own positive and own hard negative(s). For anchor ``g`` the
    candidates are all ``N`` positives followed by all ``N`` rows of each negative column, and

        loss_g = -s(a_g, p_g)/T + log( sum_j exp(s(a_g, p_j)/T) + sum_k sum_j w_gj exp(s(a_g, n_kj)/T) )

    with ``w_gj = hard_negative_weight`` when ``j == g`` and 1 otherwise: SimCSE's supervised objective
    with hard-negative weight alpha (Gao et al. 2021), where only the anchor's own hard negative is
    weighted. Implemented as ``log(alpha)`` added to that logit, so a weight of 0 removes it.

    ``symmetric=True`` averages in the reverse direction, positive -> all anchors:
    ``(loss_g + [-s(p_g, a_g)/T + log sum_j exp(s(p_g, a_j)/T)]) / 2`` (no negatives in that direction).

    ``rows`` restricts the computation to the anchors this process owns (after gathering across
    processes, see :mod:`embedkit.losses.gather`); candidates are always all ``N`` rows.
    ``logit_bias`` (``(rows, N * (1 + negative columns))``) is added to the forward logits after the
    temperature; DebCSE uses it for its log pair weights.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if hard_negative_weight < 0:
        raise ValueError(f"hard_negative_weight must be >= 0, got {hard_negative_weight}")
    negatives = _as_list(negatives)
    total = anchors.size(0)
    for name, column in [("positives", positives)] + [(f"negatives[{k}]", n) for k, n in enumerate(negatives)]:
        if column.size(0) != total:
            raise ValueError(f"{name} has {column.size(0)} rows but anchors have {total}")
    rows = rows if rows is not None else slice(0, total)
    own = torch.arange(total, device=anchors.device)[rows]  # global index of each local anchor
    local = torch.arange(own.numel(), device=anchors.device)

    candidates = torch.cat([positives, *negatives], dim=0)
    logits = scale_fn(anchors[rows], candidates) / temperature
    if negatives and hard_negative_weight != 1.0:
        log_weight = math.log(hard_negative_weight) if hard_negative_weight > 0 else -math.inf
        bias = torch.zeros_like(logits)
        for k in range(len(negatives)):
            bias[local, (k + 1) * total + own] = log_weight
        logits = logits + bias
    if logit_bias is not None:
        logits = logits + logit_bias
    losses = torch.logsumexp(logits, dim=1) - logits[local, own]

    if symmetric:
        backward_logits = scale_fn(positives[rows], anchors) / temperature
        backward = torch.logsumexp(backward_logits, dim=1) - backward_logits[local, own]
        losses = (losses + backward) / 2
    return losses


def info_nce(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | Sequence[Tensor] | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 1.0,
    symmetric: bool = False,
    scale_fn: SimilarityFn = cosine,
) -> Tensor:
    """Mean InfoNCE over all anchors (see :func:`info_nce_per_anchor` for the formula)."""
    return info_nce_per_anchor(anchors, positives, negatives, temperature, hard_negative_weight, symmetric,
                               scale_fn).mean()


def info_nce_from_columns(
    columns: Sequence[Tensor],
    temperature: float,
    hard_negative_weight: float,
    symmetric: bool,
    gather_across_devices: bool,
    scale_fn: SimilarityFn = cosine,
) -> Tensor:
    """InfoNCE over embedded batch columns ``[anchor, positive, negative_1, ...]``, optionally gathered.

    With gathering, each process scores its own anchors against the candidates of every process and
    returns ``sum of its rows' losses * world_size / total rows``. DDP averages gradients over the
    processes, so the average of these values (and of their gradients) is exactly the loss (and gradient)
    of the combined batch, even when the processes hold different numbers of rows.
    """
    if len(columns) < 2:
        raise ValueError(f"InfoNCE needs (anchor, positive[, negative...]) columns, got {len(columns)} column(s)")
    if not gather_across_devices:
        return info_nce(columns[0], columns[1], columns[2:], temperature, hard_negative_weight, symmetric, scale_fn)
    gathered, rows, world_size = gather_columns(columns)
    per_anchor = info_nce_per_anchor(gathered[0], gathered[1], gathered[2:], temperature, hard_negative_weight,
                                     symmetric, scale_fn, rows=rows)
    return per_anchor.sum() * world_size / gathered[0].size(0)


class InfoNCELoss(nn.Module):
    def __init__(
        self,
        model,
        temperature: float = 0.05,
        hard_negative_weight: float = 1.0,
        symmetric: bool = False,
        gather_across_devices: bool = False,
    ) -> None:
        """InfoNCE / NT-Xent with in-batch negatives (van den Oord et al. 2018; Gao et al. 2021, SimCSE).

        For each anchor the positive must score higher than every other positive in the batch and every
        hard negative in the batch; see :func:`info_nce_per_anchor` for the exact formula, the
        hard-negative weight (SimCSE's alpha) and the symmetric term.

        Batch columns: ``(anchor, positive)`` or ``(anchor, positive, negative_1, ..., negative_k)``; no
        label column. SimCSE recipes over it: unsupervised = each sentence as its own positive
        (``anchor == positive`` text; the two forward passes see different dropout masks, which is the
        only augmentation), supervised = NLI ``(premise, entailment, contradiction)`` triplets.

        Args:
            model: the ``SentenceTransformer`` being trained.
            temperature: softmax temperature T (SimCSE uses 0.05; ``scale = 1 / T`` in ST's terms).
            hard_negative_weight: alpha, multiplies ``exp(sim)`` of each anchor's own hard negative(s).
            symmetric: also average in the positive -> anchors direction.
            gather_across_devices: score each process's anchors against the candidates of all processes
                (torch.distributed, gradients flow back to the process that embedded them); a no-op
                when not distributed.
        """
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if hard_negative_weight < 0:
            raise ValueError(f"hard_negative_weight must be >= 0, got {hard_negative_weight}")
        self.model = model
        self.temperature = temperature
        self.hard_negative_weight = hard_negative_weight
        self.symmetric = symmetric
        self.gather_across_devices = gather_across_devices

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        return info_nce_from_columns(embeddings, self.temperature, self.hard_negative_weight, self.symmetric,
                                     self.gather_across_devices)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "hard_negative_weight": self.hard_negative_weight,
            "symmetric": self.symmetric,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        return SIMCSE_CITATION


SIMCSE_CITATION = """
@inproceedings{gao2021simcse,
    title = {{SimCSE}: Simple Contrastive Learning of Sentence Embeddings},
    author = {Gao, Tianyu and Yao, Xingcheng and Chen, Danqi},
    booktitle = {Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing},
    year = {2021},
    url = {https://arxiv.org/abs/2104.08821},
}
"""
