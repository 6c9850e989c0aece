"""Rationale rollouts for GRACE: the policy LM reads a text inside an instruction prompt and writes
a short rationale; a rollout keeps the token ids and the masks that say which positions hold the
input text, the rationale, and the policy's own tokens (rationale plus its end token).

Prompt layout (one row, left padded)::

    [pad ...][instruction head][input text tokens][tail: e.g. the assistant turn opener][rationale][<eos>][pad ...]

The head and tail come from the tokenizer's chat template when it has one (a plain
``instruction / Text: / Rationale:`` layout otherwise), tokenised apart from the text so the text's
span is known exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from embedkit.generative.lm import CausalLM
from embedkit.generative.sampling import eos_token_ids

_SLOT = "\u2063TEXT\u2063"
SYSTEM_PROMPT = "You are a concise assistant."


@dataclass
class Rollout:
    input_ids: object  # LongTensor [B, T]
    attention_mask: object  # [B, T]: prompt and rationale (with its end token), not padding
    text_mask: object  # BoolTensor [B, T]: the input text's tokens
    rationale_mask: object  # [B, T]: the rationale's tokens (end token excluded)
    policy_mask: object  # [B, T]: tokens the policy chose (rationale + end token, when it ended)
    rationales: list[str]
    finished: list[bool]  # the policy ended its rationale within the token budget
    lengths: list[int]  # rationale tokens (end token excluded)
    rationale_start: int  # the column where every row's rationale begins (prompts are left padded to it)
    hidden: object | None = None  # FloatTensor [B, T, D] last-layer states, when generation kept them


def prompt_parts(tokenizer, instruction: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the input text."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": f"{instruction}\n\nText: {_SLOT}"}]
        if "system" in str(tokenizer.chat_template):  # a short system turn instead of a long default one
            messages.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head, _, tail = rendered.partition(_SLOT)
    else:
        head, tail = f"{instruction}\n\nText: ", "\nRationale:"
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    return encode(head), encode(tail)


def generate_rollouts(lm: CausalLM, texts: Sequence[str], *, instruction: str, max_input_tokens: int,
                      max_rationale_tokens: int, num_samples: int = 1, do_sample: bool = False,
                      temperature: float = 1.0, top_p: float = 1.0, keep_hidden: bool = False) -> Rollout:
    """Rationales for ``texts`` (``num_samples`` per text, consecutive rows).

    With ``keep_hidden``, the last-layer hidden state of every prompt and rationale token is kept
    from generation itself (one more token is generated so the last rationale token's state exists),
    which saves a second forward pass when encoding.
    """
    import torch

    tok = lm.tokenizer
    head, tail = prompt_parts(tok, instruction)
    text_ids = [tok(t, add_special_tokens=False)["input_ids"][:max_input_tokens] for t in texts]
    prompts = [head + ids + tail for ids in text_ids]
    width = max(len(p) for p in prompts)
    device = lm.device
    prompt_ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    text_mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, (p, ids) in enumerate(zip(prompts, text_ids)):
        pad = width - len(p)
        prompt_ids[row, pad:] = torch.tensor(p)
        prompt_mask[row, pad:] = 1
        text_mask[row, pad + len(head):pad + len(head) + len(ids)] = True
    extra = 1 if keep_hidden else 0
    kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(do_sample=False)
    with torch.no_grad():
        out = lm.model.generate(input_ids=prompt_ids.to(device), attention_mask=prompt_mask.to(device),
                                max_new_tokens=max_rationale_tokens + extra, num_return_sequences=num_samples,
                                pad_token_id=tok.pad_token_id, output_hidden_states=keep_hidden,
                                return_dict_in_generate=True, **kwargs)
    sequences = out.sequences.cpu()
    rows = sequences.shape[0]
    new = sequences[:, width:]
    eos = eos_token_ids(lm)
    lengths, finished = [], []
    for r in range(rows):
        tokens = new[r].tolist()
        end = next((i for i, t in enumerate(tokens) if t in eos), None)
        if end is not None and end < max_rationale_tokens:
            lengths.append(end)
            finished.append(True)
        else:
            lengths.append(min(len(tokens), max_rationale_tokens))
            finished.append(False)
    total = width + max_rationale_tokens + 1
    input_ids = torch.full((rows, total), tok.pad_token_id, dtype=torch.long)
    keep = min(sequences.shape[1], total)
    input_ids[:, :keep] = sequences[:, :keep]
    attention = torch.zeros((rows, total), dtype=torch.long)
    attention[:, :width] = prompt_mask.repeat_interleave(num_samples, dim=0)
    rationale_mask = torch.zeros((rows, total), dtype=torch.bool)
    policy_mask = torch.zeros((rows, total), dtype=torch.bool)
    for r in range(rows):
        n = lengths[r] + (1 if finished[r] else 0)
        attention[r, width:width + n] = 1
        policy_mask[r, width:width + n] = True
        rationale_mask[r, width:width + lengths[r]] = True
        input_ids[r, width + n:] = tok.pad_token_id
    full_text_mask = torch.zeros((rows, total), dtype=torch.bool)
    full_text_mask[:, :width] = text_mask.repeat_interleave(num_samples, dim=0)
    hidden = _generation_hidden(out.hidden_states, rows, total) if keep_hidden else None
    rationales = [tok.decode(new[r, :lengths[r]].tolist(), skip_special_tokens=True).strip() for r in range(rows)]
    return Rollout(input_ids, attention, full_text_mask, rationale_mask, policy_mask, rationales, finished, lengths,
                   width, hidden)


def _generation_hidden(step_states, rows: int, total: int):
    """Stitch generate()'s per-step last-layer states into one ``[B, T, D]`` tensor (zeros where absent)."""
    import torch

    first = step_states[0][-1]  # the prompt: [B, width, D]
    dim = first.shape[-1]
    hidden = torch.zeros((rows, total, dim), dtype=torch.float32)
    width = first.shape[1]
    hidden[:, :width] = first.float().cpu()
    for step, layers in enumerate(step_states[1:]):
        position = width + step  # the token fed at this step is the one generated at the step before
        if position >= total:
            break
        hidden[:, position] = layers[-1][:, -1].float().cpu()
    return hidden


def forward_states(model, rollout: Rollout, need_hidden: bool = True):
    """One forward pass over prompt + rationale: ``(token log-probs [B, R], last hidden [B, T, D])``.

    The log-probabilities are those of the tokens in the rationale columns (``rationale_start`` to the
    end, ``R`` of them; mask them with ``rollout.policy_mask[:, rollout.rationale_start:]``): only those
    positions get logits, since the vocabulary projection and its softmax over every prompt position
    would cost more than the rest of the pass. Position ids follow the attention mask, as in
    generation, so left padding does not shift them.
    """
    import torch

    device = next(model.parameters()).device
    ids = rollout.input_ids.to(device)
    mask = rollout.attention_mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    columns = ids.shape[1] - rollout.rationale_start
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=need_hidden,
                logits_to_keep=columns + 1)
    logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)  # position t predicts the token at t + 1
    token_logprobs = logprobs.gather(-1, ids[:, -columns:].unsqueeze(-1)).squeeze(-1)
    hidden = out.hidden_states[-1].float() if need_hidden else None
    return token_logprobs, hidden


def pool(hidden, rollout: Rollout, pooling: str):
    """Mean of the last-layer states over the pooled positions (see ``GraceSettings.pooling``).

    ``rationale`` pools the rationale's tokens only; a row whose rationale is empty falls back to its
    input text so that it still gets an embedding.
    """
    import torch

    text = rollout.text_mask.to(hidden.device)
    rationale = rollout.rationale_mask.to(hidden.device)
    if pooling == "input_and_rationale":
        mask = text | rationale
    else:
        empty = rationale.sum(-1, keepdim=True) == 0
        mask = torch.where(empty, text, rationale)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
