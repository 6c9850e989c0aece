"""WhitenedCSE: contrastive learning with shuffled group whitening (Zhuo et al., ACL 2023).

What is implemented, following the paper and the authors' released code (github.com/SupstarZh/WhitenedCSE):

* :class:`GroupWhitening` (the paper's "shuffled group whitening", SGW). In training mode, every call
  draws a fresh random permutation of the ``D`` channels, splits the permuted channels into
  ``num_groups`` groups of ``D / num_groups``, centres each group over the batch and whitens it with the
  batch covariance ``C = X^T X / N`` (ZCA, ``W = U diag((s + eps)^-1/2) U^T``, as in the paper, or
  Cholesky, ``W = L^-T``), then undoes the permutation. Each group of the output has (up to ``eps``)
  identity covariance over the batch; channels in different groups stay correlated. The whitening matrix
  is treated as a constant in the backward pass, as in the authors' code (it rebuilds the covariance as a
  new leaf tensor); this also avoids the unstable gradient of an eigendecomposition. In eval mode the
  module is the identity: like SimCSE's MLP, SGW is part of a training-only head, and the sentence
  embedding at inference is the encoder's output.
* :class:`WhitenedCSELoss`: each sentence is encoded ``num_views`` times (dropout makes the views differ,
  as in SimCSE); each view goes through its own SGW draw (a different channel grouping, hence a
  different "distortion") and a shared training-only projection ``tanh(Linear(.))`` (the authors'
  ``MLPLayer``: whitening, dense, tanh). View 1 is the anchor and every other view is a positive:
  ``loss = sum_{m=2..V} InfoNCE(z_1, z_m)`` with in-batch negatives from view ``m``, summed over the
  positives as in the authors' code (``loss1 + loss2`` for 3 views).

Deviation: with ``num_groups=None`` the group count is chosen per batch as the smallest divisor of ``D``
whose group size is at most half the batch (the authors' automatic rule ``G = ceil(2D/N)``, rounded to a
divisor so that every channel is whitened); the authors' experiments fix ``num_groups=128`` for D=768.
A group larger than the batch cannot be whitened (its covariance is singular); ``eps`` keeps the
transform finite and the covariance is then only approximately the identity.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from sentence_transformers.base.losses.merged_forward import merge_feature_batches
from torch import Tensor, nn

from embedkit.losses.infonce import info_nce
from embedkit.models import embedding_dim

WHITENEDCSE_CITATION = """
@inproceedings{zhuo2023whitenedcse,
    title = {{WhitenedCSE}: Whitening-based Contrastive Learning of Sentence Embeddings},
    author = {Zhuo, Wenjie and Sun, Yifan and Wang, Xiaohan and Zhu, Linchao and Yang, Yi},
    booktitle = {Proceedings of the 61st Annual Meeting of the Association for Computational Linguistics},
    year = {2023},
    pages = {12135--12148},
    url = {https://aclanthology.org/2023.acl-long.677},
}
"""


def automatic_num_groups(dim: int, batch_size: int) -> int:
    """Smallest divisor ``G`` of ``dim`` with group size ``dim / G <= batch_size / 2`` (at least 1 channel)."""
    limit = max(1, batch_size // 2)
    return next(g for g in range(1, dim + 1) if dim % g == 0 and dim // g <= limit)


def whitening_matrices(covariances: Tensor, method: Literal["zca", "cholesky"], eps: float) -> Tensor:
    """``W`` with ``W^T C W = I`` for each ``(g, g)`` covariance ``C`` in a ``(G, g, g)`` stack."""
    eye = torch.eye(covariances.size(-1), dtype=covariances.dtype, device=covariances.device)
    if method == "zca":
        eigenvalues, eigenvectors = torch.linalg.eigh(covariances)
        scale = (eigenvalues.clamp_min(0) + eps).rsqrt()
        return eigenvectors @ torch.diag_embed(scale) @ eigenvectors.transpose(-1, -2)
    if method == "cholesky":
        lower = torch.linalg.cholesky(covariances + eps * eye)
        return torch.linalg.solve_triangular(lower, eye.expand_as(lower), upper=False).transpose(-1, -2)
    raise ValueError(f"whitening method must be 'zca' or 'cholesky', got {method!r}")


class GroupWhitening(nn.Module):
    def __init__(self, num_groups: int | None = None, method: Literal["zca", "cholesky"] = "zca",
                 eps: float = 1e-5, shuffle: bool = True) -> None:
        """Shuffled group whitening of ``(N, D)`` embeddings over the batch (see the module docstring).

        Args:
            num_groups: groups per call; must divide ``D``. ``None``: chosen per batch (module docstring).
            method: ``"zca"`` (the paper) or ``"cholesky"``.
            eps: added to the covariance eigenvalues (ZCA) or diagonal (Cholesky).
            shuffle: draw a new channel permutation at every call (SGW); ``False`` gives plain group whitening.
        """
        super().__init__()
        if num_groups is not None and num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        if method not in ("zca", "cholesky"):
            raise ValueError(f"whitening method must be 'zca' or 'cholesky', got {method!r}")
        self.num_groups = num_groups
        self.method = method
        self.eps = eps
        self.shuffle = shuffle
        self.last_permutation: Tensor | None = None  # the grouping of the latest training call, for inspection

    def forward(self, embeddings: Tensor) -> Tensor:
        if not self.training:
            return embeddings
        rows, dim = embeddings.shape
        groups = self.num_groups or automatic_num_groups(dim, rows)
        if dim % groups:
            raise ValueError(f"num_groups={groups} does not divide the embedding dimension {dim}")
        permutation = (torch.randperm(dim, device=embeddings.device) if self.shuffle
                       else torch.arange(dim, device=embeddings.device))
        self.last_permutation = permutation
        grouped = embeddings[:, permutation].reshape(rows, groups, dim // groups).transpose(0, 1)  # (G, N, g)
        centred = grouped - grouped.mean(dim=1, keepdim=True)
        with torch.no_grad():
            stats = centred.detach().double()
            covariances = stats.transpose(1, 2) @ stats / rows
            transform = whitening_matrices(covariances, self.method, self.eps).to(centred.dtype)
        whitened = (centred @ transform).transpose(0, 1).reshape(rows, dim)
        return whitened[:, torch.argsort(permutation)]

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, method={self.method!r}, eps={self.eps}, shuffle={self.shuffle}"


def whitened_cse_loss(views: Sequence[Tensor], temperature: float = 0.05) -> Tensor:
    """``sum_{m>=2} InfoNCE(views[0], views[m])``: view 1 is the anchor, every other view a positive."""
    if len(views) < 2:
        raise ValueError(f"WhitenedCSE needs at least 2 views, got {len(views)}")
    return sum(info_nce(views[0], view, temperature=temperature) for view in views[1:])


class WhitenedCSELoss(nn.Module):
    def __init__(
        self,
        model,
        num_groups: int | None = None,
        num_views: int = 3,
        temperature: float = 0.05,
        whitening_method: Literal["zca", "cholesky"] = "zca",
        projection: bool = True,
        eps: float = 1e-5,
    ) -> None:
        """WhitenedCSE (Zhuo et al., ACL 2023): shuffled group whitening views as multiple positives.

        Batch columns: one text column (each sentence; no label). The loss encodes it ``num_views``
        times in one forward pass, so dropout gives each view its own noise. See the module docstring
        for the exact method.

        Args:
            model: the ``SentenceTransformer`` being trained.
            num_groups: SGW groups (must divide the embedding dimension); ``None`` = automatic per batch.
                The paper uses 128 groups for 768 dimensions (6 channels per group).
            num_views: views per sentence (>= 2): one anchor and ``num_views - 1`` positives; the paper uses 3.
            temperature: InfoNCE temperature (0.05 in the paper).
            whitening_method: ``"zca"`` (the paper) or ``"cholesky"``.
            projection: a training-only ``tanh(Linear(D, D))`` after the whitening, as in the paper. Its
                weights live in this loss (the trainer optimises them) and are not saved with the model.
                Under multi-process DDP they are outside the wrapped model and so are not averaged
                across processes; use ``projection=False`` there.
            eps: whitening regulariser.
        """
        super().__init__()
        if num_views < 2:
            raise ValueError(f"num_views must be >= 2 (one anchor and at least one positive), got {num_views}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.num_groups = num_groups
        self.num_views = num_views
        self.temperature = temperature
        self.whitening_method = whitening_method
        self.eps = eps
        self.whitening = GroupWhitening(num_groups, whitening_method, eps)
        dim = embedding_dim(model)
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.Tanh()) if projection else nn.Identity()

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        if len(features) != 1:
            raise ValueError(f"WhitenedCSELoss expects one text column (each sentence), got {len(features)} columns")
        self.train(self.model.training)  # whiten in training only, following the model's mode (trainer eval)
        merged = merge_feature_batches(features * self.num_views)
        if merged is None:
            views = [self.model(features[0])["sentence_embedding"] for _ in range(self.num_views)]
        else:
            views = list(self.model(merged)["sentence_embedding"].chunk(self.num_views, dim=0))
        return self.compute_loss_from_embeddings(views)

    def compute_loss_from_embeddings(self, views: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        return whitened_cse_loss([self.projection(self.whitening(view)) for view in views], self.temperature)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_views": self.num_views,
            "temperature": self.temperature,
            "whitening_method": self.whitening_method,
            "projection": not isinstance(self.projection, nn.Identity),
            "eps": self.eps,
        }

    @property
    def citation(self) -> str:
        return WHITENEDCSE_CITATION
