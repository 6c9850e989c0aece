"""Nucleus sampling from a causal LM on token ids, and scoring continuations by LM log-likelihood.

Works on token ids (not strings) so that beam search can extend a beam without re-tokenising it.
With ``one_sentence`` a sample stops once its first sentence has ended (pysbd decides, see
:mod:`embedkit.generative.sentences`) and is cut there, so that generated continuations are
sentences, like the true continuations and in-document negatives they compete with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from embedkit.generative.lm import CausalLM
from embedkit.generative.sentences import first_sentence_end


class SamplingConfig(BaseModel):
    """Nucleus (top-p) sampling settings."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(48, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)
    max_prefix_tokens: int = Field(256, ge=1)  # longer prefixes keep their last tokens
    one_sentence: bool = False  # stop each sample after its first sentence and cut it there


@dataclass
class Continuation:
    """Generated token ids (without the end-of-sequence token) and whether the LM ended the text."""

    ids: list[int]
    finished: bool  # the LM ended the text, or (one_sentence) the sentence ended


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


class _FirstSentenceEnded:
    """A per-row stopping criterion for ``generate``: a row stops once its continuation (the last
    ``continued[row]`` context tokens plus what was generated) holds a complete first sentence."""

    def __init__(self, tokenizer, width: int, continued: Sequence[int], num_samples: int):
        self.tokenizer, self.width = tokenizer, width
        self.starts = [width - n for n in continued for _ in range(num_samples)]
        self.done = [False] * len(self.starts)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        for row, start in enumerate(self.starts):
            if not self.done[row]:
                text = self.tokenizer.decode(input_ids[row, start:].tolist(), skip_special_tokens=True)
                self.done[row] = first_sentence_end(text) is not None
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def cut_at_first_sentence(lm: CausalLM, ids: Sequence[int]) -> Continuation | None:
    """The shortest head of ``ids`` that holds the whole first sentence, or None when it has not ended."""
    end = first_sentence_end(decode(lm, ids))
    if end is None:
        return None
    for n in range(1, len(ids) + 1):
        if len(decode(lm, ids[:n])) >= end:
            return Continuation(list(ids[:n]), True)
    return None


def _shared_prompt_cache(lm: CausalLM, input_ids, attention, num_samples: int):
    """The key/value cache of the contexts minus their last token, repeated for ``num_samples`` samples
    each (transformers' prompt-reuse pattern: ``generate`` then runs only the last context token).
    Without it ``num_return_sequences`` repeats each context before running it, which costs a pass
    over the context per sample. None when there is nothing to share."""
    if num_samples == 1 or input_ids.shape[1] < 2 or not bool(attention[:, :-1].any(-1).all()):
        return None  # (a row whose only real token is the last would be an all-padding prefill)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = lm.model(input_ids=input_ids[:, :-1], attention_mask=attention[:, :-1], position_ids=positions[:, :-1],
                   use_cache=True, logits_to_keep=1)
    cache = out.cache
    cache.batch_repeat_interleave(num_samples)
    return cache


def sample_token_continuations(lm: CausalLM, contexts: Sequence[Sequence[int]], num_samples: int,
                               max_new_tokens: int, config: SamplingConfig, seed: int | None = None,
                               continued: Sequence[int] | None = None) -> list[list[Continuation]]:
    """``num_samples`` nucleus samples of at most ``max_new_tokens`` tokens after each context.

    ``continued[i]``: how many of context ``i``'s last tokens already belong to the continuation
    (beam search extends a partial one); with ``config.one_sentence`` the first sentence is looked
    for in those tokens plus the new ones, and only new tokens are returned.
    """
    import torch
    from transformers import StoppingCriteriaList

    if seed is not None:
        torch.manual_seed(seed)
    tok = lm.tokenizer
    continued = list(continued) if continued is not None else [0] * len(contexts)
    input_ids, attention = left_pad(contexts, tok.pad_token_id, lm.device)
    width = input_ids.shape[1]
    stopping = None
    if config.one_sentence:
        stopping = StoppingCriteriaList([_FirstSentenceEnded(tok, width, continued, num_samples)])
    with torch.inference_mode():
        cache = _shared_prompt_cache(lm, input_ids, attention, num_samples)
        if cache is not None:  # every sample continues from one pass over its context
            input_ids = input_ids.repeat_interleave(num_samples, dim=0)
            attention = attention.repeat_interleave(num_samples, dim=0)
        out = lm.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, top_p=config.top_p,
                                top_k=0, temperature=config.temperature, max_new_tokens=max_new_tokens,
                                num_return_sequences=1 if cache is not None else num_samples,
                                pad_token_id=tok.pad_token_id, stopping_criteria=stopping, cache=cache)
    new = out[:, width:].tolist()
    eos = eos_token_ids(lm)
    result = []
    for c, context in enumerate(contexts):
        row = []
        for s in range(num_samples):
            sample = cut_at_eos(new[c * num_samples + s], eos)
            if config.one_sentence:
                old = list(context[len(context) - continued[c]:]) if continued[c] else []
                cut = cut_at_first_sentence(lm, old + sample.ids)
                if cut is not None:
                    sample = Continuation(cut.ids[len(old):], True)
            row.append(sample)
        result.append(row)
    return result


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

    A continuation is scored as it follows the prefix in running text: one space, then the text
    stripped (so a sampled continuation, which keeps its leading space, and a sentence cut from a
    document are tokenised alike), tokenised on its own and appended to the prefix ids.
    The prefix is run once and its key/value cache is shared by every continuation (the prefix is
    usually the longer part, so this is several times cheaper than scoring each pair whole).
    An empty continuation scores ``-inf`` (no tokens to average).
    """
    import copy

    import torch

    tok = lm.tokenizer
    context = prefix_ids(lm, prefix.rstrip(), max_prefix_tokens)
    conts = [tok(" " + c.strip(), add_special_tokens=False)["input_ids"] if c.strip() else [] for c in continuations]
    scores = [float("-inf")] * len(conts)
    rows = [i for i, c in enumerate(conts) if c]
    if not rows:
        return scores
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([context], device=lm.device), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts every continuation's first token
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            width = max(len(conts[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), len(context) + width), dtype=torch.long)
            mask[:, :len(context)] = 1
            for row, i in enumerate(chunk):  # right padding: a real token never attends to the padding after it
                ids[row, :len(conts[i])] = torch.tensor(conts[i])
                mask[row, len(context):len(context) + len(conts[i])] = 1
            cache = copy.deepcopy(out.cache)
            cache.batch_repeat_interleave(len(chunk))
            positions = torch.arange(len(context), len(context) + width).unsqueeze(0).expand(len(chunk), -1)
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                              position_ids=positions.to(lm.device), cache=cache, use_cache=True).logits
            later = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position t predicts token t + 1
            for row, i in enumerate(chunk):
                n = len(conts[i])
                token_lp = first[ids[row, 0]].reshape(1)
                if n > 1:
                    token_lp = torch.cat([token_lp, later[row, torch.arange(n - 1), ids[row, 1:n]]])
                scores[i] = float(token_lp.mean())
    return scores
