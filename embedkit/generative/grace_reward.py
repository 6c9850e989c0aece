"""The GRACE reward for a batch of (query, positive) pairs, each text with a group of sampled rationales.

For sample ``g`` of query ``i`` (embedding ``q[i, g]``), the contrastive term is the InfoNCE
log-probability of picking its own positive among the batch's positives (the other rows are the
in-batch negatives)::

    contrastive(q[i, g]) = log softmax_j( cos(q[i, g], p̄[j]) / temperature )[i]

where ``p̄[j]`` is the mean embedding of positive ``j``'s sampled group (a stable target while the
query's samples compete). Positives are rewarded symmetrically against the query means. The term is
at most 0; it is ``-log(batch)`` at chance.

Two documented shaping terms keep rationales usable:

- length: ``-length_weight * max(0, min_tokens - n) / min_tokens`` for a rationale of ``n`` tokens,
  so the policy cannot collapse to empty rationales (0 once it writes ``min_tokens`` tokens);
- format: ``-format_weight`` when the rationale is malformed: it ran out of the token budget
  without ending, or it loops (more than half of its word 3-grams are repeats); 0 otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from embedkit.generative.metrics import rep_n


class RewardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.05, gt=0)
    length_weight: float = Field(0.5, ge=0)
    min_tokens: int = Field(6, ge=1)
    format_weight: float = Field(0.5, ge=0)
    max_repetition: float = Field(0.5, ge=0, le=1)  # word 3-gram repeat fraction above which a rationale loops


@dataclass
class Rewards:
    total: object  # FloatTensor [N, G] for queries and for positives, stacked: [2, N, G]
    contrastive: object
    length: object
    format: object


def contrastive_rewards(queries, positives, temperature: float):
    """``(reward of each query sample [N, G], reward of each positive sample [N, G])``; inputs ``[N, G, D]``."""
    import torch
    import torch.nn.functional as F

    q = F.normalize(queries.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    q_mean = F.normalize(q.mean(1), dim=-1)  # [N, D]
    p_mean = F.normalize(p.mean(1), dim=-1)
    n = q.shape[0]
    target = torch.arange(n, device=q.device)
    # [N, G, N]: sample (i, g) against every row's mean of the other side
    q_logits = torch.einsum("igd,jd->igj", q, p_mean) / temperature
    p_logits = torch.einsum("igd,jd->igj", p, q_mean) / temperature
    q_reward = torch.log_softmax(q_logits, dim=-1)[torch.arange(n), :, target]
    p_reward = torch.log_softmax(p_logits, dim=-1)[torch.arange(n), :, target]
    return q_reward, p_reward


def length_reward(lengths, settings: RewardSettings):
    import torch

    lengths = torch.as_tensor(lengths, dtype=torch.float32)
    short = (settings.min_tokens - lengths).clamp(min=0) / settings.min_tokens
    return -settings.length_weight * short


def format_reward(rationales: list[str], finished: list[bool], settings: RewardSettings):
    import torch

    bad = [(not done) or rep_n([text], 3) > settings.max_repetition for text, done in zip(rationales, finished)]
    return -settings.format_weight * torch.tensor(bad, dtype=torch.float32)


def grace_rewards(query_emb, positive_emb, query_rollout, positive_rollout, settings: RewardSettings) -> Rewards:
    """All reward terms, shaped ``[2, N, G]`` (index 0: query samples, 1: positive samples).

    Rollout rows are ordered text by text with the group's samples consecutive, so row ``i * G + g``
    is sample ``g`` of text ``i``.
    """
    import torch

    n, g = query_emb.shape[0], query_emb.shape[1]
    q_con, p_con = contrastive_rewards(query_emb, positive_emb, settings.temperature)
    contrastive = torch.stack([q_con, p_con]).cpu()
    length = torch.stack([length_reward(r.lengths, settings).view(n, g) for r in (query_rollout, positive_rollout)])
    fmt = torch.stack([format_reward(r.rationales, r.finished, settings).view(n, g)
                       for r in (query_rollout, positive_rollout)])
    return Rewards(contrastive + length + fmt, contrastive, length, fmt)
