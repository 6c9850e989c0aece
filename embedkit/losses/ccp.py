"""Contrastive context prediction (CCP; Wu et al., IJCAI 2022).

Wu, Liang, Ren, Shou, Duan, Gong, Jiang 2022, "Unsupervised Context Aware Sentence Representation
Pretraining for Multi-lingual Dense Retrieval" (arXiv:2206.03281): sentences near each other in a
document are positives. Each sentence embedding goes through a projection head; the anchor (centre
sentence) must pick its context sentence among the in-batch candidates and a memory bank of earlier
embeddings, and vice versa. Two parts keep this from collapsing or cheating, per the paper:

- a memory bank per language (:class:`embedkit.modules.LanguageMemoryBank`): an anchor is only ever
  contrasted with candidates of its own language, in the batch and in the bank, so language identity
  cannot separate the positive from the negatives;
- asymmetric batch normalisation on the projection (:class:`embedkit.modules.AsymmetricBatchNorm`):
  batch statistics on the anchor side only, so the positive side carries no information about the
  other rows of its batch.

Options beyond the paper, each measured in docs/moe-ccp.md: leaving the anchor's own document out of
its negatives, leaving out candidates the encoder already ranks above the pair, and a momentum copy of
the encoder (MoCo) that embeds the candidates and fills the bank -- the one that made the SciFact recipe
work.

The projection exists for training only: the model's own sentence embeddings (before the projection)
are what retrieval uses, as in SimCLR-style training. The paper's pretraining code is not public (its
repository holds the retrieval fine-tuning stage), so the exact head (one linear layer + batch norm),
the bank holding both sides for the symmetric term, and the masking of other-language in-batch
candidates are this implementation's reading of the method section.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers.base.losses.merged_forward import embed_columns
from torch import Tensor, nn

from embedkit.modules.batchnorm import AsymmetricBatchNorm
from embedkit.modules.memory import LanguageMemoryBank

# the bank's views: projected positives and anchors, then (with false-negative masking) the embeddings
# before the projection, which the masking compares
POSITIVE_VIEW, ANCHOR_VIEW, RAW_POSITIVE_VIEW, RAW_ANCHOR_VIEW = 0, 1, 2, 3


def ccp_loss(
    anchors: Tensor,
    positives: Tensor,
    language_ids: Tensor,
    bank: LanguageMemoryBank | None = None,
    temperature: float = 0.05,
    symmetric: bool = True,
    document_ids: Tensor | None = None,
    guide: tuple[Tensor, Tensor] | None = None,
    keys: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Mean CCP loss over the rows; ``anchors`` and ``positives`` are projected ``(N, D)`` embeddings.

    For anchor ``i`` of language ``l`` the candidates are the positives of the batch's language-``l``
    rows followed by the bank's language-``l`` positives (view 0), scored by cosine / T, and the loss is
    the cross-entropy of picking its own positive. With ``symmetric``, positive ``i`` must likewise pick
    anchor ``i`` among the batch's language-``l`` anchors and the bank's anchors (view 1), and the two
    directions are averaged. The bank is read, not written (the caller enqueues after the step).

    With ``document_ids`` (one per row), candidates from the row's own document -- other rows of the
    batch and bank rows enqueued with that id -- are left out: they are not negatives but the row's
    context too. With ``guide`` -- the rows' (anchor, positive) embeddings before the projection -- a
    candidate that the guide already scores above the row's own pair is left out as well: a likely
    false negative (a sentence from another abstract on the same finding), the rule GISTEmbed applies
    with a guide model. The bank must then hold those embeddings as views 2 (positives) and 3 (anchors).

    With ``keys`` -- projected (anchor, positive) embeddings of the same rows from a momentum encoder,
    as in MoCo -- the in-batch candidates are the keys instead of ``positives`` / ``anchors`` themselves,
    so they are as consistent with the bank (filled with keys) as the bank is with itself.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if anchors.shape != positives.shape or anchors.size(0) != language_ids.numel() or (
            document_ids is not None and document_ids.numel() != anchors.size(0)):
        raise ValueError(f"anchors {tuple(anchors.shape)}, positives {tuple(positives.shape)}, "
                         f"{language_ids.numel()} language ids and the document ids do not line up")
    anchors, positives = F.normalize(anchors, dim=-1), F.normalize(positives, dim=-1)
    if guide is not None:
        guide = (F.normalize(guide[0].detach(), dim=-1), F.normalize(guide[1].detach(), dim=-1))
    key_anchors, key_positives = ((anchors, positives) if keys is None
                                  else (F.normalize(keys[0].detach(), dim=-1), F.normalize(keys[1].detach(), dim=-1)))
    total = anchors.new_zeros(())
    for language in torch.unique(language_ids).tolist():
        rows = (language_ids == language).nonzero().squeeze(1)
        a, p = anchors[rows], positives[rows]
        targets = torch.arange(rows.numel(), device=anchors.device)
        banked = bank.get(language, POSITIVE_VIEW).to(p) if bank is not None else p[:0]
        own_document = _own_document(document_ids, rows, bank, language, banked.size(0))
        blocked = own_document | _above_pair(guide, rows, bank, language, backward=False)
        forward = (a @ torch.cat([key_positives[rows], banked]).T / temperature).masked_fill(blocked, float("-inf"))
        losses = F.cross_entropy(forward, targets, reduction="none")
        if symmetric:
            banked = bank.get(language, ANCHOR_VIEW).to(a) if bank is not None else a[:0]
            blocked = own_document | _above_pair(guide, rows, bank, language, backward=True)
            backward = (p @ torch.cat([key_anchors[rows], banked]).T / temperature).masked_fill(blocked, float("-inf"))
            losses = (losses + F.cross_entropy(backward, targets, reduction="none")) / 2
        total = total + losses.sum()
    return total / anchors.size(0)


def _own_document(document_ids: Tensor | None, rows: Tensor, bank: LanguageMemoryBank | None, language: int,
                  banked: int) -> Tensor:
    """``(rows, rows + banked)``: True where a candidate shares the row's document, except the row's own
    positive (the diagonal); all False without document ids."""
    if document_ids is None:
        return torch.zeros(rows.numel(), rows.numel() + banked, dtype=torch.bool, device=rows.device)
    documents = document_ids.to(rows.device)[rows]
    candidates = documents
    if banked:
        candidates = torch.cat([documents, bank.get_documents(language).to(rows.device)])
    mask = documents[:, None] == candidates[None, :]
    mask[:, : rows.numel()].fill_diagonal_(False)
    return mask


def _above_pair(guide: tuple[Tensor, Tensor] | None, rows: Tensor, bank: LanguageMemoryBank | None,
                language: int, backward: bool) -> Tensor | bool:
    """True where the guide scores a candidate (other than the row's own) above the row's anchor-positive
    pair; False without a guide. ``backward``: the positive is the query and anchors the candidates."""
    if guide is None:
        return False
    guide_anchors, guide_positives = guide[0][rows], guide[1][rows]
    query, candidates, view = ((guide_positives, guide_anchors, RAW_ANCHOR_VIEW) if backward
                               else (guide_anchors, guide_positives, RAW_POSITIVE_VIEW))
    if bank is not None:
        candidates = torch.cat([candidates, bank.get(language, view).to(candidates)])
    above = query @ candidates.T > (guide_anchors * guide_positives).sum(-1, keepdim=True)
    above[:, : rows.numel()].fill_diagonal_(False)
    return above


class CCPLoss(nn.Module):
    def __init__(
        self,
        model,
        languages: Sequence[str] = ("en",),
        projection_dim: int | None = None,
        memory_bank_size: int = 4096,
        temperature: float = 0.05,
        symmetric: bool = True,
        projection_init: str = "random",
        batch_norm: bool = True,
        mask_false_negatives: bool = False,
        momentum: float | None = None,
    ) -> None:
        """Contrastive context prediction with a per-language memory bank and asymmetric batch norm.

        Batch columns: ``(anchor, positive)`` -- a sentence and a sentence within ``w`` sentences of it
        in the same document (see :func:`embedkit.training.ccp.context_pairs`) -- and a ``label``
        column with each row's language id (an index into ``languages``; without labels every row is
        ``languages[0]``), or ``[language id, document id]`` per row: then candidates from the row's own
        document are not used as negatives (see :func:`ccp_loss`). After each training step the step's
        projected embeddings are enqueued, with their document ids.

        Args:
            model: the ``SentenceTransformer`` being trained.
            languages: language names, in label order; one bank queue each.
            projection_dim: width of the projection head (default: the embedding width).
            memory_bank_size: rows kept per language (0: in-batch negatives only).
            temperature: softmax temperature T.
            symmetric: also predict the anchor from its context sentence (the paper's "vice versa").
            projection_init: ``random`` (``nn.Linear``'s default) or ``identity`` (needs
                ``projection_dim`` equal to the embedding width; after :meth:`calibrate` the whole
                head is the identity map), so the first steps' gradients reach the encoder through its
                own embedding space rather than through a random rotation and scaling of it.
            batch_norm: the paper's asymmetric batch norm after the projection. Without it (an ablation)
                the loss sees the embeddings' common mean direction, which batch statistics remove.
            mask_false_negatives: leave out candidates that the encoder's own embeddings (before the
                projection) already place closer to the query than its pair (see :func:`ccp_loss`).
            momentum: with a value m in [0, 1), a momentum copy of the model and projection (MoCo, He et
                al. 2020: after each step, copy = m * copy + (1 - m) * model) embeds the candidates and
                fills the bank, so the bank's rows come from a slowly moving encoder rather than from
                earlier states of the one being trained. None: no copy.
        """
        super().__init__()
        from embedkit.models import embedding_dim

        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if memory_bank_size < 0:
            raise ValueError(f"memory_bank_size must be >= 0, got {memory_bank_size}")
        self.model = model
        self.languages = list(languages)
        width = embedding_dim(model)
        self.projection_dim = projection_dim or width
        self.temperature, self.symmetric, self.memory_bank_size = temperature, symmetric, memory_bank_size
        self.projection = nn.Linear(width, self.projection_dim)
        if projection_init == "identity":
            if self.projection_dim != width:
                raise ValueError(f"projection_init 'identity' needs projection_dim == {width}, got {self.projection_dim}")
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(width))
                self.projection.bias.zero_()
        elif projection_init != "random":
            raise ValueError(f"projection_init must be 'random' or 'identity', got {projection_init!r}")
        self.projection_init = projection_init
        self.batch_norm = AsymmetricBatchNorm(self.projection_dim) if batch_norm else None
        self.mask_false_negatives = mask_false_negatives
        if momentum is not None and not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.key_model = self.key_projection = None
        if momentum is not None:
            self.key_model, self.key_projection = copy.deepcopy(model), copy.deepcopy(self.projection)
            for parameter in [*self.key_model.parameters(), *self.key_projection.parameters()]:
                parameter.requires_grad_(False)
        views = 4 if mask_false_negatives else 2 if symmetric else 1
        if mask_false_negatives and memory_bank_size and self.projection_dim != width:
            raise ValueError(f"mask_false_negatives with a memory bank needs projection_dim == {width}")
        self.memory = (LanguageMemoryBank(self.projection_dim, memory_bank_size, self.languages, views=views)
                       if memory_bank_size else None)

    @torch.no_grad()
    def calibrate(self, embeddings: Tensor) -> None:
        """Start the batch norm's running statistics at those of the projected ``embeddings`` (see
        :meth:`AsymmetricBatchNorm.calibrate`): sentence embeddings of the training data, before training.

        With the identity projection, the batch norm's scale and shift are also set to undo its
        normalisation (weight = running std, bias = running mean), so the whole head starts as the
        identity map: the loss begins in the encoder's own cosine geometry instead of one where every
        dimension is standardised. On all-MiniLM-L6-v2 and SciFact this did not change the outcome
        (docs/moe-ccp.md, runs E1, E2, E4).
        """
        norm = self.batch_norm
        if norm is None:
            return
        norm.calibrate(self.projection(embeddings.to(self.projection.weight)))
        if self.projection_init == "identity" and norm.weight is not None:
            norm.weight.copy_(torch.sqrt(norm.running_var + norm.eps))
            norm.bias.copy_(norm.running_mean)

    def project(self, embeddings: Tensor, side: str, projection: nn.Module | None = None) -> Tensor:
        """The head: ``projection`` (default: the trained one), then the batch norm's ``side``."""
        projected = (projection or self.projection)(embeddings)
        return projected if self.batch_norm is None else self.batch_norm(projected, side)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = list(sentence_features)
        anchors, positives = embed_columns(self.model, sentence_features)
        keys = self.embed_keys(sentence_features) if self.key_model is not None and self.model.training else None
        return self.compute_loss_from_embeddings([anchors, positives], labels, keys)

    @torch.no_grad()
    def embed_keys(self, sentence_features: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Move the momentum copy towards the model (one step behind the optimiser), then embed both
        columns with it: projected, normalised with the batch norm's running statistics."""
        m = self.momentum
        for online, key in ((self.model, self.key_model), (self.projection, self.key_projection)):
            for p, k in zip(online.parameters(), key.parameters()):
                k.mul_(m).add_(p.detach(), alpha=1 - m)
        self.key_model.eval()  # no dropout on the keys
        anchors, positives = embed_columns(self.key_model, sentence_features)
        return (self.project(anchors, "positive", self.key_projection),
                self.project(positives, "positive", self.key_projection))

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor | None = None,
                                     keys: tuple[Tensor, Tensor] | None = None) -> Tensor:
        if len(embeddings) != 2:
            raise ValueError(f"CCP needs (anchor, positive) columns, got {len(embeddings)}")
        anchors, positives = embeddings
        language_ids, document_ids = split_labels(labels, anchors.size(0), anchors.device)
        if language_ids.numel() and not 0 <= int(language_ids.min()) <= int(language_ids.max()) < len(self.languages):
            raise ValueError(f"language ids must be in 0..{len(self.languages) - 1}")
        if self.batch_norm is not None:
            self.batch_norm.train(self.model.training)
        z_anchor, z_positive = self.project(anchors, "anchor"), self.project(positives, "positive")
        guide = (anchors, positives) if self.mask_false_negatives else None
        loss = ccp_loss(z_anchor, z_positive, language_ids, self.memory, self.temperature, self.symmetric,
                        document_ids, guide, keys)
        if self.memory is not None and self.model.training:
            key_anchor, key_positive = keys if keys is not None else (z_anchor, z_positive)
            views = [key_positive, key_anchor, positives, anchors][: self.memory.views]
            self.memory.enqueue([F.normalize(v, dim=-1) for v in views], language_ids, document_ids)
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {"languages": self.languages, "projection_dim": self.projection_dim,
                "memory_bank_size": self.memory_bank_size, "temperature": self.temperature,
                "symmetric": self.symmetric, "projection_init": self.projection_init,
                "batch_norm": self.batch_norm is not None, "mask_false_negatives": self.mask_false_negatives,
                "momentum": self.momentum}

    @property
    def citation(self) -> str:
        return CCP_CITATION


def split_labels(labels: Tensor | None, rows: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """(language ids, document ids or None) from CCP's label column: ``(N,)`` or ``(N, 2)``."""
    if labels is None:
        return torch.zeros(rows, dtype=torch.long, device=device), None
    labels = labels.to(device).long()
    if labels.dim() == 2 and labels.size(1) == 2:
        return labels[:, 0], labels[:, 1]
    if labels.dim() > 1:
        raise ValueError(f"CCP labels must be (N,) language ids or (N, 2) [language, document], got {tuple(labels.shape)}")
    return labels, None


CCP_CITATION = """
@inproceedings{wu2022ccp,
    title = {Unsupervised Context Aware Sentence Representation Pretraining for Multi-lingual Dense Retrieval},
    author = {Wu, Ning and Liang, Yaobo and Ren, Houxing and Shou, Linjun and Duan, Nan and Gong, Ming and Jiang, Daxin},
    booktitle = {Proceedings of the Thirty-First International Joint Conference on Artificial Intelligence (IJCAI)},
    year = {2022},
    url = {https://arxiv.org/abs/2206.03281},
}
"""
