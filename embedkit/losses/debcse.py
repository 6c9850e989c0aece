"""DebCSE: debiased contrastive sentence embeddings (Miao et al., CIKM 2023), the loss half.

The paper's diagnosis: the rules that build contrastive pairs make the label predictable from surface
features. SimCSE's positive is the sentence itself (same length, every word shared) and its in-batch
negatives are unrelated sentences (other lengths, few shared words), so a model can separate positives
from negatives by length and word overlap instead of meaning; random in-batch negatives also contain
false negatives. DebCSE selects positive and negative pairs by inverse-propensity weighted sampling that
takes both the surface and the semantic similarity of two sentences into account.

The sampling is data, not loss: :mod:`embedkit.training.debcse` (the recipe's ``data.debcse`` block) builds
candidate pairs over the training corpus (each sentence's dropout view and its nearest neighbours by the
encoder, labelled by their semantic similarity), fits the propensity ``P(positive | surface)`` and draws
every row's positive and hard negative with inverse-propensity probabilities. What is left for the loss
are the pairs no sampler chose: every anchor against the *other* rows' positives and negatives, formed at
random by batching. This module weights those, per batch:

1. Surface features of every (anchor, candidate) pair of the batch (:func:`surface_features`, from the
   token ids without special tokens and padding): Jaccard overlap of the token sets and the relative length
   difference ``|len_i - len_j| / max(len_i, len_j)``.
2. Propensity (:func:`fit_propensity`): a logistic regression of "is the row's own positive" on the
   standardised features, the two classes given equal total weight and the slopes an L2 penalty, fitted by
   Newton's method on the batch (also used by the sampler, on the whole candidate pool).
3. Weights (:func:`debcse_pair_weights`): an in-batch negative gets ``1 / (1 - e)``, trimmed at
   ``max_weight`` and normalised to mean 1 over each anchor's in-batch negatives, so negatives that share
   many words with the anchor count more than those that share none. The row's own positive and its own
   sampled hard negative(s) keep weight 1: the sampler already drew them by their propensity.
4. False negatives: an in-batch negative whose semantic similarity to the anchor (a frozen ``guide`` model,
   else the training model's detached embeddings) exceeds the anchor's positive's minus
   ``false_negative_margin`` is dropped (its weight is 0). The row's own hard negatives are never dropped.
5. Weighted InfoNCE: ``loss_i = -s_ii/T + log(exp(s_ii/T) + sum_j w_ij exp(s_ij/T))``, averaged over rows,
   the weights entering as log biases on the logits and computed without gradient.

Deviations from the paper, stated precisely. Its text could not be read here (only the abstract), so the
estimator details are this implementation's: the candidate construction (nearest neighbours of the base
encoder, cosine thresholds for positives and negatives), the surface features (word Jaccard and length
difference), the propensity model (class-balanced penalised logistic regression), the trimming (drawing
only pairs within the common support ``trim <= e <= 1 - trim``, after Crump et al. 2009, since dropout
views have propensity ~1 and no negative shares their surface), weights capped at ``max_weight``, one draw
of rows before training (not re-drawn each epoch), the semantic similarities of the frozen base encoder,
and the in-batch weighting and false-negative rule of this module. Not gathered across processes: each
process weights and scores its own batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import cos_sim
from torch import Tensor, nn

from embedkit.losses.infonce import info_nce_per_anchor

DEBCSE_CITATION = """
@inproceedings{miao2023debcse,
    title = {{DebCSE}: Rethinking Unsupervised Contrastive Sentence Embedding Learning in the Debiasing Perspective},
    author = {Miao, Pu and Du, Zeyao and Zhang, Junlin},
    booktitle = {Proceedings of the 32nd ACM International Conference on Information and Knowledge Management},
    year = {2023},
    doi = {10.1145/3583780.3614833},
    url = {https://arxiv.org/abs/2309.07396},
}
"""

SURFACE_FEATURES = ("jaccard", "relative_length_difference")


def _token_bags(input_ids: Tensor, attention_mask: Tensor, special_ids: Tensor,
                vocabulary: Tensor) -> tuple[Tensor, Tensor]:
    """``(rows, |vocabulary|)`` 0/1 token-set matrix and the token count of each row."""
    keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    index = torch.searchsorted(vocabulary, input_ids)
    bags = torch.zeros(input_ids.size(0), vocabulary.numel(), device=input_ids.device)
    bags.scatter_add_(1, index, keep.float())
    return (bags > 0).float(), keep.sum(dim=1).float()


def surface_features(anchors: dict[str, Tensor], candidates: Sequence[dict[str, Tensor]],
                     special_ids: Sequence[int] = ()) -> Tensor:
    """``(rows, candidates, 2)`` surface features (Jaccard token overlap, relative length difference).

    ``anchors`` and each entry of ``candidates`` are tokenised columns (``input_ids``, ``attention_mask``);
    the candidates are concatenated in order, as in the loss. Special tokens and padding are ignored.
    """
    columns = [anchors, *candidates]
    device = anchors["input_ids"].device
    special = torch.tensor(list(special_ids), dtype=anchors["input_ids"].dtype, device=device)
    vocabulary = torch.unique(torch.cat([c["input_ids"].flatten() for c in columns]))
    bags = [_token_bags(c["input_ids"], c["attention_mask"], special, vocabulary) for c in columns]
    anchor_bag, anchor_len = bags[0]
    candidate_bag = torch.cat([bag for bag, _ in bags[1:]])
    candidate_len = torch.cat([length for _, length in bags[1:]])
    overlap = anchor_bag @ candidate_bag.T
    union = anchor_bag.sum(1, keepdim=True) + candidate_bag.sum(1)[None, :] - overlap
    jaccard = torch.where(union > 0, overlap / union.clamp_min(1), torch.zeros_like(overlap))
    longer = torch.maximum(anchor_len[:, None], candidate_len[None, :]).clamp_min(1)
    length_difference = (anchor_len[:, None] - candidate_len[None, :]).abs() / longer
    return torch.stack([jaccard, length_difference], dim=-1)


@dataclass(frozen=True)
class PropensityModel:
    """``P(pair is the labelled positive | surface features)``: a logistic regression on standardised features."""

    mean: Tensor
    scale: Tensor
    coefficients: Tensor  # intercept first

    def __call__(self, features: Tensor) -> Tensor:
        standardised = (features.double() - self.mean) / self.scale
        return torch.sigmoid(self.coefficients[0] + standardised @ self.coefficients[1:]).to(features.dtype)


def fit_propensity(features: Tensor, is_positive: Tensor, l2: float = 0.01, iterations: int = 25) -> PropensityModel:
    """Class-balanced, L2-penalised logistic regression fitted by Newton's method (see the module docstring).

    ``features`` is ``(..., F)`` and ``is_positive`` the matching boolean mask; both classes must occur.
    """
    x = features.reshape(-1, features.size(-1)).detach().double()
    y = is_positive.reshape(-1).double()
    positives, negatives = y.sum(), (1 - y).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("the propensity model needs both positive and negative pairs")
    mean = x.mean(0)
    scale = x.std(0, unbiased=False)
    scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
    design = torch.cat([torch.ones_like(y)[:, None], (x - mean) / scale], dim=1)
    sample_weight = torch.where(y > 0, 0.5 / positives, 0.5 / negatives)  # each class sums to 1/2
    penalty = torch.full((design.size(1),), l2, dtype=torch.float64, device=x.device)
    penalty[0] = 0.0
    coefficients = torch.zeros(design.size(1), dtype=torch.float64, device=x.device)
    for _ in range(iterations):
        p = torch.sigmoid(design @ coefficients)
        gradient = design.T @ (sample_weight * (y - p)) - penalty * coefficients
        hessian = (design.T * (sample_weight * p * (1 - p))) @ design + torch.diag(penalty)
        step = torch.linalg.solve(hessian + 1e-10 * torch.eye(design.size(1), dtype=torch.float64,
                                                              device=x.device), gradient)
        coefficients = coefficients + step
        if step.abs().max() < 1e-8:
            break
    return PropensityModel(mean, scale, coefficients)


@dataclass(frozen=True)
class PairWeights:
    """What the DebCSE loss needs: log weights on the candidate logits, and the propensities behind them."""

    logit_bias: Tensor  # (rows, candidates) log of each pair's weight; 0 for the row's own pairs, -inf dropped
    propensity: Tensor  # (rows, candidates) e_ij, for inspection


def debcse_pair_weights(
    features: Tensor,
    semantic_similarity: Tensor | None = None,
    hard_negative_columns: int = 0,
    max_weight: float = 10.0,
    l2: float = 0.01,
    false_negative_margin: float | None = 0.0,
) -> PairWeights:
    """Weights of the batch's in-batch pairs (steps 2-4 of the module docstring).

    ``features``: ``(rows, candidates, F)`` from :func:`surface_features`, candidates ordered as
    ``[positives (rows), negative column 1 (rows), ...]``, so pair ``(i, i)`` is i's positive and
    ``(i, (k + 1) * rows + i)`` its k-th sampled hard negative. ``semantic_similarity``: same
    ``(rows, candidates)`` layout, or ``None`` to keep every negative.
    """
    rows, candidates = features.shape[:2]
    if candidates != rows * (1 + hard_negative_columns):
        raise ValueError(f"expected {rows * (1 + hard_negative_columns)} candidates, got {candidates}")
    device = features.device
    own = torch.arange(rows, device=device)
    is_positive = torch.zeros(rows, candidates, dtype=torch.bool, device=device)
    is_positive[own, own] = True
    own_negative = torch.zeros_like(is_positive)
    for k in range(hard_negative_columns):
        own_negative[own, (k + 1) * rows + own] = True

    propensity = fit_propensity(features, is_positive, l2=l2)(features).clamp(1e-6, 1 - 1e-6)
    in_batch = ~is_positive & ~own_negative
    kept = in_batch.clone()
    if semantic_similarity is not None and false_negative_margin is not None:
        positive_similarity = semantic_similarity[own, own]
        kept &= ~(semantic_similarity > (positive_similarity - false_negative_margin)[:, None])
    weights = torch.where(kept, (1 / (1 - propensity)).clamp(max=max_weight), torch.zeros_like(propensity))
    weights = weights * kept.sum(1, keepdim=True).clamp_min(1) / weights.sum(1, keepdim=True).clamp_min(1e-12)
    logit_bias = torch.where(kept, weights.clamp_min(1e-12).log(), torch.full_like(weights, -torch.inf))
    logit_bias[~in_batch] = 0.0  # the row's own positive and hard negatives: weight 1
    return PairWeights(logit_bias.detach(), propensity.detach())


def debcse_loss(anchors: Tensor, positives: Tensor, negatives: Sequence[Tensor], weights: PairWeights,
                temperature: float = 0.05) -> Tensor:
    """Weighted InfoNCE of step 5 of the module docstring, averaged over rows."""
    return info_nce_per_anchor(anchors, positives, negatives, temperature=temperature,
                               logit_bias=weights.logit_bias).mean()


class DebCSELoss(nn.Module):
    def __init__(
        self,
        model,
        temperature: float = 0.05,
        max_weight: float = 10.0,
        l2: float = 0.01,
        false_negative_margin: float | None = 0.0,
        guide=None,
    ) -> None:
        """DebCSE (Miao et al., CIKM 2023): InfoNCE with inverse-propensity weighted in-batch pairs (see the
        module docstring).

        Batch columns: ``(anchor, positive, negative_1, ...)`` as drawn by the DebCSE sampler
        (``data.debcse`` in a recipe, :mod:`embedkit.training.debcse`), or ``(anchor, positive)``; no labels.

        Args:
            model: the ``SentenceTransformer`` being trained.
            temperature: InfoNCE temperature.
            max_weight: cap on the inverse-propensity weights (before normalisation).
            l2: L2 penalty on the propensity model's slopes (standardised features).
            false_negative_margin: drop an in-batch negative whose semantic similarity to the anchor
                exceeds the positive's minus this margin; ``None`` keeps all negatives.
            guide: optional frozen ``SentenceTransformer`` for the semantic similarities (default: the
                training model's own embeddings, detached).
        """
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if max_weight < 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight}")
        self.model = model
        self.temperature = temperature
        self.max_weight = max_weight
        self.l2 = l2
        self.false_negative_margin = false_negative_margin
        self.guide = guide
        if guide is not None:
            guide.requires_grad_(False)

    def _tokenizer(self, model):
        return getattr(getattr(model, "module", model), "tokenizer", None)

    def _guide_embeddings(self, features: list[dict[str, Tensor]]) -> list[Tensor]:
        tokenizer, guide_tokenizer = self._tokenizer(self.model), self._tokenizer(self.guide)
        same_tokens = tokenizer is not None and guide_tokenizer is not None and \
            tokenizer.get_vocab() == guide_tokenizer.get_vocab()
        with torch.no_grad():
            if same_tokens:
                return [self.guide(dict(f))["sentence_embedding"] for f in features]
            embeddings = []
            for f in features:
                texts = tokenizer.batch_decode(f["input_ids"], skip_special_tokens=True)
                guide_features = {k: v.to(self.guide.device) for k, v in self.guide.preprocess(texts).items()}
                embeddings.append(self.guide(guide_features)["sentence_embedding"].to(f["input_ids"].device))
            return embeddings

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        if len(features) < 2:
            raise ValueError(f"DebCSELoss needs (anchor, positive[, negative...]) columns, got {len(features)}")
        tokenizer = self._tokenizer(self.model)
        special_ids = tokenizer.all_special_ids if tokenizer is not None else []
        surface = surface_features(features[0], features[1:], special_ids)
        guide_embeddings = self._guide_embeddings(features) if self.guide is not None else None
        embeddings = embed_columns(self.model, features)
        return self.compute_loss_from_embeddings(embeddings, surface, guide_embeddings)

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], surface: Tensor,
                                     guide_embeddings: Sequence[Tensor] | None = None) -> Tensor:
        semantic = guide_embeddings if guide_embeddings is not None else [e.detach() for e in embeddings]
        similarity = cos_sim(semantic[0], torch.cat(list(semantic[1:]))).float()
        weights = debcse_pair_weights(surface, similarity, hard_negative_columns=len(embeddings) - 2,
                                      max_weight=self.max_weight, l2=self.l2,
                                      false_negative_margin=self.false_negative_margin)
        return debcse_loss(embeddings[0], embeddings[1], embeddings[2:], weights, self.temperature)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_weight": self.max_weight,
            "l2": self.l2,
            "false_negative_margin": self.false_negative_margin,
            "guide": None if self.guide is None else type(self.guide).__name__,
        }

    @property
    def citation(self) -> str:
        return DEBCSE_CITATION
