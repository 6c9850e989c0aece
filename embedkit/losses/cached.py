"""GradCache InfoNCE: the batch size of the loss is decoupled from the batch size that must fit in memory.

The GradCache procedure (Gao et al. 2021) is sentence-transformers' own ``CachedLossMixin``
(the machinery behind its ``CachedMultipleNegativesRankingLoss``), reused rather than rewritten:

1. embed every column mini-batch by mini-batch without a graph, snapshotting the RNG state of each
   mini-batch forward;
2. compute the InfoNCE loss on all embeddings at once (the same :func:`info_nce_from_columns` the
   uncached loss uses, gathering included) and back-propagate it to the embeddings only, caching
   d loss / d embedding;
3. in a backward hook on the returned loss (so it runs inside the trainer's ``loss.backward()``),
   re-embed each mini-batch with a graph under the replayed RNG state (identical dropout masks) and
   back-propagate ``<embedding, cached gradient>``, one mini-batch at a time.

Only one mini-batch of activations is alive at any time, and the parameter gradients equal those of
:class:`embedkit.losses.InfoNCELoss` on the whole batch (up to float rounding).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin
from torch import Tensor, nn

from embedkit.losses.infonce import SIMCSE_CITATION, info_nce_from_columns

GRADCACHE_CITATION = """
@inproceedings{gao2021scaling,
    title = {Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author = {Gao, Luyu and Zhang, Yunyi and Han, Jiawei and Callan, Jamie},
    booktitle = {Proceedings of the 6th Workshop on Representation Learning for NLP},
    year = {2021},
    url = {https://arxiv.org/abs/2101.06983},
}
"""


class CachedInfoNCELoss(CachedLossMixin, nn.Module):
    def __init__(
        self,
        model,
        mini_batch_size: int = 32,
        temperature: float = 0.05,
        hard_negative_weight: float = 1.0,
        symmetric: bool = False,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        """:class:`~embedkit.losses.InfoNCELoss` with gradient caching (Gao et al. 2021, GradCache).

        Same batch columns and options as ``InfoNCELoss``: ``(anchor, positive[, negative_1, ...])``, no
        labels. Set the trainer's batch size to the contrastive batch you want (e.g. 1024) and
        ``mini_batch_size`` to what fits in memory; each training step costs about one extra forward
        pass (the embedding pass without a graph).

        Args:
            model: the ``SentenceTransformer`` being trained.
            mini_batch_size: rows per forward pass; bounds activation memory.
            temperature, hard_negative_weight, symmetric, gather_across_devices: as in ``InfoNCELoss``.
            show_progress_bar: a tqdm bar over the mini-batches of each step.
        """
        super().__init__()
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if hard_negative_weight < 0:
            raise ValueError(f"hard_negative_weight must be >= 0, got {hard_negative_weight}")
        self.model = model
        self.mini_batch_size = mini_batch_size
        self.temperature = temperature
        self.hard_negative_weight = hard_negative_weight
        self.symmetric = symmetric
        self.gather_across_devices = gather_across_devices
        self.show_progress_bar = show_progress_bar

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.forward_cached(sentence_features, labels)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        """The loss over the whole batch from per-mini-batch embeddings (step 2 of the module docstring)."""
        columns = [torch.cat(mini_batches) for mini_batches in reps]
        loss = info_nce_from_columns(columns, self.temperature, self.hard_negative_weight, self.symmetric,
                                     self.gather_across_devices)
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "mini_batch_size": self.mini_batch_size,
            "temperature": self.temperature,
            "hard_negative_weight": self.hard_negative_weight,
            "symmetric": self.symmetric,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        return GRADCACHE_CITATION + SIMCSE_CITATION
