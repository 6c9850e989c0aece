"""DebCSE's training pairs: candidate pairs over the corpus, a propensity model, inverse-propensity sampling.

Miao et al. (CIKM 2023) observe that the rules which build contrastive pairs let surface features give the
label away: SimCSE's positive is the sentence itself (same length, every word shared), its negatives are
random sentences (other lengths, few shared words), so a model can lower the loss by length and word
overlap instead of meaning. DebCSE selects positive and negative pairs by inverse-propensity weighted
sampling, using both the surface and the semantic similarity of two sentences. Here, for a one-sentence-a-line
corpus (the recipe's ``data``, kind ``sentences``):

1. Candidates (:func:`candidate_pairs`). Each sentence is embedded by the encoder (the recipe's base model
   unless ``encoder`` names another) and its ``neighbours`` nearest sentences are found with the index layer.
   Candidate positives of sentence i: its dropout view (the sentence itself, encoded twice: SimCSE's
   positive) and the neighbours whose semantic similarity (cosine) is at least ``positive_threshold``.
   Candidate negatives: the neighbours at most ``negative_threshold`` (nearer ones are ambiguous and left
   out, as likely false negatives). Neighbours with the anchor's exact text count as its dropout view.
2. Propensity (:func:`embedkit.losses.debcse.fit_propensity`): ``e = P(positive | surface)``, a class-balanced
   logistic regression of the candidate's label on its surface features, word Jaccard overlap and relative
   length difference (:func:`surface_features`), fitted on the whole candidate pool.
3. Sampling (:func:`sample_pairs`): ``rows`` positives are drawn with replacement from the pool of
   candidate positives with probability proportional to ``1 / e`` (trimmed at ``max_weight``); each row's
   hard negative is drawn from its anchor's candidate negatives with probability proportional to
   ``1 / (1 - e)`` (an anchor without any gets a uniformly drawn corpus sentence). Dropout views, whose
   surface screams "positive", are drawn less often than neighbours that share few words, and never once
   their propensity is above ``1 - trim`` (with the shipped recipe's trim of 0.1 no dropout view is drawn:
   every positive is a neighbour; ``sampled_dropout_view_share`` in a run's results); negatives that
   share many words are drawn more often. Under these probabilities the surface features are (nearly)
   balanced between positives and negatives, which :func:`surface_auc` measures: the ROC AUC with which a
   logistic regression on the surface features tells the sampled positives from the sampled negatives,
   against the same draw with uniform probabilities.

The semantic similarity thus decides which pairs may be positives or negatives, the surface similarity how
often each is drawn. The loss (:class:`embedkit.losses.DebCSELoss`) then trains on ``(anchor, positive,
negative)`` rows and weights the remaining, randomly formed in-batch pairs; its docstring lists the
deviations from the paper.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from embedkit.errors import ConfigError

_WORD = re.compile(r"\w+")


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def surface_features(texts: list[str], anchors: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(pairs, 2)``: word Jaccard overlap and ``|len_a - len_b| / max(len_a, len_b)`` in words of each pair
    ``(texts[anchors[k]], texts[candidates[k]])`` (lower-cased ``\\w+`` words)."""
    bags = {i: _words(texts[i]) for i in np.unique(np.concatenate([anchors, candidates]))}
    lengths = {i: len(_WORD.findall(texts[i])) for i in bags}
    out = np.zeros((len(anchors), 2))
    for k, (a, c) in enumerate(zip(anchors.tolist(), candidates.tolist())):
        union = len(bags[a] | bags[c])
        out[k, 0] = len(bags[a] & bags[c]) / union if union else 1.0
        longer = max(lengths[a], lengths[c], 1)
        out[k, 1] = abs(lengths[a] - lengths[c]) / longer
    return out


@dataclass
class CandidatePairs:
    """Candidate pairs ``(anchor, candidate)`` as sentence indexes, with what sampling needs."""

    anchor: np.ndarray
    candidate: np.ndarray
    semantic: np.ndarray  # cosine by the encoder (1.0 for a dropout view)
    surface: np.ndarray  # (pairs, 2) from surface_features
    positive: np.ndarray  # bool: candidate positive (else candidate negative)
    propensity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # e = P(positive | surface)


def candidate_pairs(texts: list[str], embeddings: np.ndarray, neighbours: int, positive_threshold: float,
                    negative_threshold: float) -> CandidatePairs:
    """Step 1 of the module docstring: dropout views and labelled neighbours of every sentence."""
    from embedkit.index import FaissIndex

    if not negative_threshold < positive_threshold:
        raise ConfigError(f"data.debcse: negative_threshold ({negative_threshold}) must be below "
                          f"positive_threshold ({positive_threshold})")
    count = len(texts)
    index = FaissIndex(embeddings.shape[1], spec="Flat", metric="cosine")
    index.add([str(i) for i in range(count)], embeddings)
    hits = index.search(embeddings, min(count, neighbours + 1))
    anchor, candidate, semantic = list(range(count)), list(range(count)), [1.0] * count
    for i, row in enumerate(hits):
        for hit in row:
            j = int(hit.id)
            if j == i or texts[j] == texts[i]:  # the sentence itself (or a copy): its dropout view is above
                continue
            if hit.score >= positive_threshold or hit.score <= negative_threshold:
                anchor.append(i), candidate.append(j), semantic.append(float(hit.score))
    anchor, candidate, semantic = np.array(anchor), np.array(candidate), np.array(semantic)
    positive = (anchor == candidate) | (semantic >= positive_threshold)
    return CandidatePairs(anchor, candidate, semantic, surface_features(texts, anchor, candidate), positive)


def fit_pair_propensity(pairs: CandidatePairs, l2: float = 0.01) -> CandidatePairs:
    """Step 2: fit ``P(positive | surface)`` on the pool and store each pair's propensity."""
    import torch

    from embedkit.losses.debcse import fit_propensity

    if pairs.positive.all() or not pairs.positive.any():
        raise ConfigError("data.debcse: no neighbour has a cosine at or below negative_threshold (or at or above "
                          "positive_threshold); raise neighbours or move the thresholds")
    features = torch.from_numpy(pairs.surface)
    model = fit_propensity(features, torch.from_numpy(pairs.positive), l2=l2)
    pairs.propensity = model(features).numpy().clip(1e-6, 1 - 1e-6)
    return pairs


def sample_pairs(pairs: CandidatePairs, rows: int, max_weight: float, trim: float, seed: int,
                 inverse_propensity: bool = True) -> np.ndarray:
    """Step 3: ``(rows, 3)`` sentence indexes ``anchor, positive, negative``. With ``inverse_propensity``
    False every candidate is equally likely and nothing is trimmed (the draw :func:`surface_auc` compares
    against)."""
    rng = np.random.default_rng(seed)
    e = pairs.propensity
    supported = (e >= trim) & (e <= 1 - trim) if inverse_propensity else np.ones(len(e), bool)
    positives = np.flatnonzero(pairs.positive & supported)
    if not len(positives):
        raise ConfigError(f"data.debcse: no candidate positive has a propensity within [{trim}, {1 - trim}]; "
                          "lower trim or positive_threshold")
    weight = np.minimum(1 / e[positives], max_weight) if inverse_propensity else np.ones(len(positives))
    chosen = positives[rng.choice(len(positives), size=rows, replace=True, p=weight / weight.sum())]
    count = int((pairs.anchor == pairs.candidate).sum())  # every sentence has its dropout view
    pools = []  # negatives grouped by anchor: within the common support first, else any of the anchor's
    for keep in (~pairs.positive & supported, ~pairs.positive):
        negatives = np.flatnonzero(keep)
        negatives = negatives[np.argsort(pairs.anchor[negatives], kind="stable")]
        bounds = np.searchsorted(pairs.anchor[negatives], np.arange(count + 1))
        pools.append((negatives, bounds))
    out = np.empty((rows, 3), dtype=np.int64)
    for r, k in enumerate(chosen):
        a = int(pairs.anchor[k])
        pool = next((n[b[a]:b[a + 1]] for n, b in pools if b[a + 1] > b[a]), None)
        if pool is not None:
            w = np.minimum(1 / (1 - e[pool]), max_weight) if inverse_propensity else np.ones(len(pool))
            negative = int(pairs.candidate[rng.choice(pool, p=w / w.sum())])
        else:
            negative = int(rng.integers(count - 1))
            negative += negative >= a  # any sentence but the anchor
        out[r] = (a, int(pairs.candidate[k]), negative)
    return out


def surface_auc(texts: list[str], rows: np.ndarray) -> float:
    """ROC AUC with which a logistic regression on surface features, fitted on these rows, tells their
    ``(anchor, positive)`` pairs from their ``(anchor, negative)`` pairs (0.5: the surface says nothing)."""
    import torch

    from embedkit.losses.debcse import fit_propensity

    features = np.concatenate([surface_features(texts, rows[:, 0], rows[:, 1]),
                               surface_features(texts, rows[:, 0], rows[:, 2])])
    label = np.concatenate([np.ones(len(rows), bool), np.zeros(len(rows), bool)])
    score = fit_propensity(torch.from_numpy(features), torch.from_numpy(label), l2=0.0)(torch.from_numpy(features))
    return roc_auc(score.numpy(), label)


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC, ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    positives, negatives = label.sum(), (~label).sum()
    return float((ranks[label].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass
class DebCSEPairs:
    columns: dict[str, list]  # anchor, positive, negative
    stats: dict  # pool sizes, propensity fit, surface AUC before/after weighting


def debcse_pairs(texts: list[str], embeddings: np.ndarray, *, neighbours: int, positive_threshold: float,
                 negative_threshold: float, max_weight: float, trim: float, rows: int | None,
                 seed: int) -> DebCSEPairs:
    """Steps 1-3 of the module docstring on ``texts`` embedded as ``embeddings``."""
    pairs = fit_pair_propensity(candidate_pairs(texts, embeddings, neighbours, positive_threshold,
                                                negative_threshold))
    rows = rows or len(texts)
    sampled = sample_pairs(pairs, rows, max_weight, trim, seed)
    uniform = sample_pairs(pairs, rows, max_weight, trim, seed, inverse_propensity=False)
    dropout_views = pairs.anchor == pairs.candidate
    stats = {
        "candidate_positives": int(pairs.positive.sum()), "dropout_views": int(dropout_views.sum()),
        "candidate_negatives": int((~pairs.positive).sum()), "rows": rows,
        "sampled_dropout_view_share": float((sampled[:, 0] == sampled[:, 1]).mean()),
        "uniform_dropout_view_share": float((uniform[:, 0] == uniform[:, 1]).mean()),
        "surface_auc_uniform": surface_auc(texts, uniform), "surface_auc_sampled": surface_auc(texts, sampled),
    }
    columns = {name: [texts[i] for i in sampled[:, c]] for c, name in enumerate(("anchor", "positive", "negative"))}
    return DebCSEPairs(columns, stats)
