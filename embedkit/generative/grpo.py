"""Group-relative policy optimisation pieces (GRPO; Shao et al., 2024, as GRACE trains its policy):
advantages relative to each text's own group of samples, the per-token KL estimate to a frozen
reference, and the clipped policy-gradient loss.

Hand-written because TRL's ``GRPOTrainer`` (not a dependency) computes rewards per completion from
a prompt, while GRACE's reward needs the hidden states of every text's rationales in the batch at
once (queries against positives), and the loop must run on a CPU with a LoRA policy whose frozen
reference is the same model with the adapter switched off.
"""
from __future__ import annotations

from dataclasses import dataclass


def group_relative_advantages(rewards, normalize_std: bool = True, eps: float = 1e-6):
    """``A[..., g] = (r[..., g] - mean_g r) / (std_g r + eps)`` over the last (group) dimension.

    A group whose samples all got the same reward gets zero advantage: it teaches nothing.
    """
    centred = rewards - rewards.mean(dim=-1, keepdim=True)
    if not normalize_std:
        return centred
    return centred / (rewards.std(dim=-1, keepdim=True, unbiased=False) + eps)


def kl_k3(logprobs, ref_logprobs):
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k3):
    ``exp(ref - logp) - (ref - logp) - 1``, never negative and unbiased."""
    import torch

    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


@dataclass
class LossParts:
    loss: object  # scalar tensor with grad
    policy: float
    kl: float
    clip_fraction: float


def grpo_loss(logprobs, old_logprobs, ref_logprobs, advantages, mask, kl_coef: float, clip_eps: float = 0.2) -> LossParts:
    """Clipped surrogate plus ``kl_coef`` times the k3 KL, averaged over each sequence's policy
    tokens (``mask``), then over sequences. ``advantages`` is one value per sequence ``[B]``."""
    import torch

    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.to(logprobs.device).unsqueeze(-1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    kl = kl_k3(logprobs, ref_logprobs)
    per_token = -surrogate + kl_coef * kl
    lengths = mask.sum(-1).clamp(min=1.0)
    has_tokens = (mask.sum(-1) > 0).to(logprobs.dtype)
    per_seq = (per_token * mask).sum(-1) / lengths
    loss = (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)
    with torch.no_grad():
        denom = mask.sum().clamp(min=1.0)
        clipped = ((ratio - 1).abs() > clip_eps).to(mask.dtype)
        return LossParts(loss, float((-surrogate * mask).sum() / denom), float((kl * mask).sum() / denom),
                         float((clipped * mask).sum() / denom))
