"""Nucleus sampling from a causal LM on token ids, and scoring continuations by LM log-likelihood.

Works on token ids (not strings) so that beam search can extend a beam without re-tokenising it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from embedkit.generative.lm import CausalLM


class SamplingConfig(BaseModel):
    """Nucleus (top-p) sampling settings."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(48, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)
    max_prefix_tokens: int = Field(256, ge=1)  # longer prefixes keep their last tokens


@dataclass
class Continuation:
    """Generated token ids (without the end-of-sequence token) and whether the LM ended the text."""

    ids: list[int]
    finished: bool


def prefix_ids(lm: CausalLM, text: str, max_tokens: int) -> list[int]:
    """Token ids of ``text``, keeping the last ``max_tokens`` (the end of a prefix matters most)."""
    tok = lm.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"][-max_tokens:]
    if not ids:  # generation needs at least one token to condition on
        ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    return ids


def left_pad(batch: Sequence[Sequence[int]], pad_id: int, device):
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(list(ids), dtype=torch.long)
            attention[row, width - len(ids):] = 1
    return input_ids.to(device), attention.to(device)


def cut_at_eos(ids: Sequence[int], eos_ids: set[int]) -> Continuation:
    for i, token in enumerate(ids):
        if token in eos_ids:
            return Continuation(list(ids[:i]), True)
    return Continuation(list(ids), False)


def eos_token_ids(lm: CausalLM) -> set[int]:
    ids = {lm.tokenizer.eos_token_id}
    configured = getattr(lm.model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def sample_token_continuations(lm: CausalLM, contexts: Sequence[Sequence[int]], num_samples: int,
                               max_new_tokens: int, config: SamplingConfig, seed: int | None = None
                               ) -> list[list[Continuation]]:
    """``num_samples`` nucleus samples of at most ``max_new_tokens`` tokens after each context."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    tok = lm.tokenizer
    input_ids, attention = left_pad(contexts, tok.pad_token_id, lm.device)
    with torch.inference_mode():
        out = lm.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, top_p=config.top_p,
                                top_k=0, temperature=config.temperature, max_new_tokens=max_new_tokens,
                                num_return_sequences=num_samples, pad_token_id=tok.pad_token_id)
    new = out[:, input_ids.shape[1]:].tolist()
    eos = eos_token_ids(lm)
    return [[cut_at_eos(new[c * num_samples + s], eos) for s in range(num_samples)] for c in range(len(contexts))]


def decode(lm: CausalLM, ids: Sequence[int]) -> str:
    return lm.tokenizer.decode(list(ids), skip_special_tokens=True)


def sample_continuations(lm: CausalLM, prefixes: Sequence[str], num_samples: int, config: SamplingConfig,
                         seed: int | None = None, batch_size: int = 8) -> list[list[str]]:
    """``num_samples`` nucleus-sampled continuation texts per prefix (prefix text not included)."""
    out: list[list[str]] = []
    for start in range(0, len(prefixes), batch_size):
        chunk = [prefix_ids(lm, p, config.max_prefix_tokens) for p in prefixes[start:start + batch_size]]
        batch_seed = None if seed is None else seed + start
        samples = sample_token_continuations(lm, chunk, num_samples, config.max_new_tokens, config, batch_seed)
        out.extend([decode(lm, c.ids) for c in row] for row in samples)
    return out


def continuation_logprobs(lm: CausalLM, prefix: str, continuations: Sequence[str], max_prefix_tokens: int = 256,
                          batch_size: int = 8) -> list[float]:
    """Mean per-token log-probability of each continuation given ``prefix`` (the LM's own score).

    A continuation is tokenised on its own and appended to the prefix ids, as the LM produced it.
    An empty continuation scores ``-inf`` (no tokens to average).
    """
    import torch

    tok = lm.tokenizer
    context = prefix_ids(lm, prefix, max_prefix_tokens)
    scores: list[float] = []
    for start in range(0, len(continuations), batch_size):
        conts = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations[start:start + batch_size]]
        seqs = [context + c for c in conts]
        input_ids, attention = left_pad(seqs, tok.pad_token_id, lm.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = lm.model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        token_lp = logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        width = input_ids.shape[1]
        for row, cont in enumerate(conts):
            if not cont:
                scores.append(float("-inf"))
                continue
            # the continuation occupies the last len(cont) positions; token t is predicted at t-1
            scores.append(float(token_lp[row, width - 1 - len(cont):].mean()))
    return scores
