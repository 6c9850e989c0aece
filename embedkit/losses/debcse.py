"""DebCSE: debiased contrastive sentence embeddings by inverse-propensity weighting (Miao et al., CIKM 2023).

The paper's diagnosis: the rules that build contrastive pairs make the label predictable from surface
features. SimCSE's positive is the sentence itself (same length, full word overlap) and its in-batch
negatives are unrelated sentences (other lengths, little overlap), so a model can separate positives
from negatives by length and word overlap instead of meaning; random in-batch negatives also contain
false negatives. DebCSE selects positive and negative pairs with inverse-propensity weights computed
from the surface similarity and the semantic similarity of the two sentences.

What this module implements, per batch, on the pairs (anchor i, candidate j) where the candidates are
all positives and all hard negatives of the batch (i's own positive is the labelled positive pair,
every other candidate a negative):

1. Surface features of every pair (:func:`surface_features`), from the token ids (special tokens and
   padding removed): Jaccard overlap of the two token sets, and the relative length difference
   ``|len_i - len_j| / max(len_i, len_j)``.
2. Propensity model (:func:`fit_propensity`): a logistic regression of "is the labelled positive" on the
   standardised surface features, with an L2 penalty on the slopes (the intercept is free) and the two
   classes given equal total weight, fitted by Newton's method on the batch. Its output
   ``e_ij = P(positive | surface features)`` is how much the surface alone gives the label away; the
   balanced class weights make ``e`` independent of the 1 : (candidates - 1) class ratio of in-batch
   pairs, and the penalty keeps it finite when the surface separates the classes perfectly (SimCSE).
3. Inverse-propensity weights (:func:`debcse_pair_weights`): a positive pair gets ``1 / e``, a negative
   ``1 / (1 - e)``, trimmed at ``max_weight``. Positives that look like positives (same words, same
   length) are down-weighted relative to positives that share few words; negatives that look like
   negatives are down-weighted relative to negatives with high overlap or similar length. Under these
   weights the surface features are (approximately: trimming, penalty) balanced between positive and
   negative pairs, so they no longer predict the label and the model cannot lower the loss with them.
4. Semantic selection, with similarities from a frozen ``guide`` model when given, else the training
   model's own embeddings (detached): an unlabelled in-batch negative more similar to the anchor than the
   anchor's positive (minus ``false_negative_margin``) is treated as a false negative and dropped (the
   labelled hard negatives are kept); with ``min_positive_similarity``, positive pairs less similar than
   that are dropped as noisy.
5. Loss: weighted InfoNCE. For anchor i, with ``s`` the cosine similarities and T the temperature,
   ``loss_i = -s_ii/T + log(exp(s_ii/T) + sum_j w_ij exp(s_ij/T))`` where the negative weights ``w_ij``
   are normalised to mean 1 over each anchor's kept negatives, and the batch loss is
   ``sum_i v_i loss_i / sum_i v_i`` with ``v_i`` the positive pair's weight. All weights are computed
   without gradient.

Deviations from the paper, stated precisely: the paper applies inverse-propensity weighted *sampling*
when building training pairs; here the same weights are applied to the in-batch pairs inside the loss
(the expectation of IPW sampling is the IPW-weighted objective), which needs no extra corpus pass or
encoding and runs on the CPU. The concrete propensity model (class-balanced penalised logistic
regression on two surface features, refitted per batch), the trimming and the false-negative rule are
this implementation's choices; the paper's exact estimator is not reproduced. Not gathered across
processes: each process weights and scores its own batch.
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
    """What the DebCSE loss needs: per-anchor weights and log weights on the candidate logits."""

    anchor_weights: Tensor  # (rows,) weight of each anchor's positive pair, 0 = dropped
    logit_bias: Tensor  # (rows, candidates) log of the normalised negative weights; 0 on own positive
    propensity: Tensor  # (rows, candidates) e_ij, for inspection


def debcse_pair_weights(
    features: Tensor,
    semantic_similarity: Tensor | None = None,
    hard_negative_columns: int = 0,
    max_weight: float = 10.0,
    l2: float = 0.01,
    false_negative_margin: float | None = 0.0,
    min_positive_similarity: float | None = None,
) -> PairWeights:
    """Inverse-propensity pair weights with semantic selection (steps 2-4 of the module docstring).

    ``features``: ``(rows, candidates, F)`` from :func:`surface_features`, candidates ordered as
    ``[positives (rows), negative column 1 (rows), ...]``, so pair ``(i, i)`` is i's positive and
    ``(i, (k + 1) * rows + i)`` its k-th labelled hard negative. ``semantic_similarity``: same
    ``(rows, candidates)`` layout, or ``None`` to skip semantic selection.
    """
    rows, candidates = features.shape[:2]
    if candidates != rows * (1 + hard_negative_columns):
        raise ValueError(f"expected {rows * (1 + hard_negative_columns)} candidates, got {candidates}")
    device = features.device
    own = torch.arange(rows, device=device)
    is_positive = torch.zeros(rows, candidates, dtype=torch.bool, device=device)
    is_positive[own, own] = True
    labelled_negative = torch.zeros_like(is_positive)
    for k in range(hard_negative_columns):
        labelled_negative[own, (k + 1) * rows + own] = True

    propensity = fit_propensity(features, is_positive, l2=l2)(features).clamp(1e-6, 1 - 1e-6)
    weights = torch.where(is_positive, 1 / propensity, 1 / (1 - propensity)).clamp(max=max_weight)

    kept_negative = ~is_positive
    anchor_weights = weights[own, own].clone()
    if semantic_similarity is not None:
        positive_similarity = semantic_similarity[own, own]
        if false_negative_margin is not None:
            false_negative = semantic_similarity > (positive_similarity - false_negative_margin)[:, None]
            kept_negative &= ~(false_negative & ~labelled_negative)
        if min_positive_similarity is not None:
            anchor_weights = torch.where(positive_similarity >= min_positive_similarity, anchor_weights,
                                         torch.zeros_like(anchor_weights))

    negative_weights = torch.where(kept_negative, weights, torch.zeros_like(weights))
    kept_count = kept_negative.sum(1, keepdim=True).clamp_min(1)
    negative_weights = negative_weights * kept_count / negative_weights.sum(1, keepdim=True).clamp_min(1e-12)
    logit_bias = torch.where(kept_negative, negative_weights.clamp_min(1e-12).log(),
                             torch.full_like(weights, -torch.inf))
    logit_bias[own, own] = 0.0
    if anchor_weights.sum() > 0:
        anchor_weights = anchor_weights * (anchor_weights > 0).sum() / anchor_weights.sum()
    return PairWeights(anchor_weights.detach(), logit_bias.detach(), propensity.detach())


def debcse_loss(anchors: Tensor, positives: Tensor, negatives: Sequence[Tensor], weights: PairWeights,
                temperature: float = 0.05) -> Tensor:
    """Weighted InfoNCE of step 5 of the module docstring."""
    per_anchor = info_nce_per_anchor(anchors, positives, negatives, temperature=temperature,
                                     logit_bias=weights.logit_bias)
    total = weights.anchor_weights.sum()
    if total == 0:  # every positive pair was dropped: no signal, but keep the graph for backward()
        return per_anchor.sum() * 0.0
    return (per_anchor * weights.anchor_weights).sum() / total


class DebCSELoss(nn.Module):
    def __init__(
        self,
        model,
        temperature: float = 0.05,
        max_weight: float = 10.0,
        l2: float = 0.01,
        false_negative_margin: float | None = 0.0,
        min_positive_similarity: float | None = None,
        guide=None,
    ) -> None:
        """DebCSE (Miao et al., CIKM 2023): inverse-propensity weighted InfoNCE (see the module docstring).

        Batch columns: ``(anchor, positive)`` or ``(anchor, positive, negative_1, ...)``, no labels; for
        the unsupervised setting the positive is the anchor text itself (dropout noise), as in SimCSE.

        Args:
            model: the ``SentenceTransformer`` being trained.
            temperature: InfoNCE temperature.
            max_weight: trimming of the inverse-propensity weights (before normalisation).
            l2: L2 penalty on the propensity model's slopes (standardised features).
            false_negative_margin: drop an unlabelled in-batch negative whose semantic similarity to the
                anchor exceeds the positive's minus this margin; ``None`` keeps all negatives.
            min_positive_similarity: drop positive pairs whose semantic similarity is below this.
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
        self.min_positive_similarity = min_positive_similarity
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
                                      false_negative_margin=self.false_negative_margin,
                                      min_positive_similarity=self.min_positive_similarity)
        return debcse_loss(embeddings[0], embeddings[1], embeddings[2:], weights, self.temperature)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_weight": self.max_weight,
            "l2": self.l2,
            "false_negative_margin": self.false_negative_margin,
            "min_positive_similarity": self.min_positive_similarity,
            "guide": None if self.guide is None else type(self.guide).__name__,
        }

    @property
    def citation(self) -> str:
        return DEBCSE_CITATION
