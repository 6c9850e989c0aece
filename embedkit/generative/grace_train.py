"""The ``grace`` training method: GRACE policy optimisation with a LoRA adapter (``method: grace``).

One step: for ``batch_size`` (query, positive) pairs, the policy samples ``group_size`` rationales
per text; one forward pass gives each rationale's token log-probabilities and its embedding
(:mod:`embedkit.generative.rationale`); the reward (:mod:`embedkit.generative.grace_reward`) scores
every sample against the batch's other pairs; advantages are relative to each text's own group;
the loss is the clipped policy gradient plus ``kl_coef`` times the KL to the reference (the same
model with the adapter switched off) (:mod:`embedkit.generative.grpo`). Only LoRA weights train.

Recipe fields used: ``model`` (the base causal LM: ``default`` is the packaged SmolLM2-135M-Instruct),
``data`` (pairs: kind beir/pairs/triplets/nli), ``batch_size`` (pairs per step), ``learning_rate``,
``weight_decay``, ``max_steps`` (or ``epochs``), ``max_grad_norm``, ``seed``, ``save_steps``,
``logging_steps`` and ``eval`` (before/after, through ``embedkit.evaluation``). ``params`` below.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from embedkit.generative.grace import GraceEncoder, GraceSettings, LoraSettings, create_grace_encoder
from embedkit.generative.grace_reward import RewardSettings, grace_rewards
from embedkit.generative.grpo import group_relative_advantages, grpo_loss
from embedkit.generative.rationale import Rollout, forward_states, pool

TRAIN_LOG = "train_log.jsonl"
REWARD_CURVE = "reward_curve.jsonl"  # the held-out reward entries of TRAIN_LOG, written as they come
STATE_FILE = "trainer_state.json"  # written last in a checkpoint: its presence marks the checkpoint complete


class PairSource(BaseModel):
    """A set of (query, positive) pairs: kind ``sts`` keeps the pairs scored at least ``min_score``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pairs", "triplets", "nli", "beir", "sts"]
    path: str
    split: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)
    min_score: Optional[float] = None  # sts only: e.g. 4.0 keeps near-paraphrases as positives

    @model_validator(mode="after")
    def _min_score_for_sts(self) -> "PairSource":
        if (self.min_score is None) != (self.kind != "sts"):
            raise ValueError("min_score is required for kind sts (e.g. 4.0) and only for it")
        return self


class GraceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instruction: str = GraceSettings.model_fields["instruction"].default
    max_input_tokens: int = Field(64, ge=1)
    max_rationale_tokens: int = Field(16, ge=1)
    pooling: Literal["input_and_rationale", "rationale"] = "input_and_rationale"
    lora: LoraSettings = LoraSettings()
    group_size: int = Field(4, ge=2)
    sampling_temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    kl_coef: float = Field(0.04, ge=0)
    clip_eps: float = Field(0.2, gt=0)
    normalize_advantages: bool = True
    reward: RewardSettings = RewardSettings()
    extra_pairs: list[PairSource] = []  # more training pairs besides ``data``
    held_out: list[PairSource] = []  # pairs never trained on (dev splits) for the held-out reward curve
    held_out_pairs: int = Field(16, ge=2)  # a fixed sample of this many pairs from each held-out source
    held_out_every: int = Field(20, ge=1)  # steps between held-out reward measurements
    eval_sts_pairs: Optional[int] = Field(None, ge=1)  # evaluate STS sets on a seeded sample (None: all pairs)

    def settings(self, base_lm: str) -> GraceSettings:
        return GraceSettings(base_lm=base_lm, instruction=self.instruction, max_input_tokens=self.max_input_tokens,
                             max_rationale_tokens=self.max_rationale_tokens, pooling=self.pooling, lora=self.lora)


# ------------------------------------------------------------------------------------------- data


def load_pair_source(source) -> list[tuple[str, str]]:
    """(query, positive) pairs of a recipe ``data`` spec or a :class:`PairSource`."""
    from embedkit.training.datasets import load_training_data
    from embedkit.training.recipe import DataSpec

    spec = DataSpec(kind=source.kind, path=source.path, split=source.split, limit=source.limit)
    columns = load_training_data(spec).columns
    if source.kind == "sts":
        min_score = getattr(source, "min_score", None)
        return [(a, b) for a, b, score in zip(columns["sentence1"], columns["sentence2"], columns["score"])
                if min_score is None or score >= min_score]
    first = "query" if "query" in columns else "anchor"
    return list(zip(columns[first], columns["positive"]))


def load_pairs(recipe, params: GraceParams) -> list[list[tuple[str, str]]]:
    """Training pairs, one list per source (``data`` first, then ``extra_pairs``)."""
    return [load_pair_source(source) for source in [recipe.data, *params.extra_pairs]]


def held_out_sample(params: GraceParams) -> list[tuple[str, str]]:
    """A fixed (seed-independent) sample of ``held_out_pairs`` pairs from each held-out source, so the
    reward curves of runs with different seeds are measured on the same pairs."""
    held = []
    for index, source in enumerate(params.held_out):
        pairs = load_pair_source(source)
        rng = random.Random(f"held-out:{index}")
        held.extend(rng.sample(pairs, min(params.held_out_pairs, len(pairs))))
    return held


def batches(sources: list[list[tuple[str, str]]], batch_size: int, seed: int, epoch: int):
    """Shuffled batches, each from one source (in-batch negatives from the same kind of text are the
    informative ones: an STS sentence among SciFact abstracts is told apart whatever the rationale),
    without a repeated query or positive inside a batch (a duplicate would be a false in-batch
    negative); a source's last short batch is dropped. The batch order mixes the sources."""
    rng = random.Random(seed * 1000 + epoch)
    out = []
    for pairs in sources:
        order = list(pairs)
        rng.shuffle(order)
        batch, texts = [], set()
        for pair in order:
            if pair[0] in texts or pair[1] in texts:  # left out of this epoch's batches
                continue
            batch.append(pair)
            texts.update(pair)
            if len(batch) == batch_size:
                out.append(batch)
                batch, texts = [], set()
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------- one step


def rollout_pairs(encoder: GraceEncoder, pairs, samples: int, do_sample: bool, params: GraceParams,
                  keep_hidden: bool = False) -> Rollout:
    texts = [q for q, _ in pairs] + [p for _, p in pairs]
    sampling = dict(do_sample=do_sample, num_samples=samples, keep_hidden=keep_hidden)
    if do_sample:
        sampling.update(temperature=params.sampling_temperature, top_p=params.top_p)
    return encoder.rollouts(texts, **sampling)


def _half(rollout: Rollout, rows: slice) -> Rollout:
    return replace(rollout, rationales=rollout.rationales[rows], finished=rollout.finished[rows],
                   lengths=rollout.lengths[rows])


def rewards_for(embeddings, rollout: Rollout, n_pairs: int, samples: int, params: GraceParams):
    dim = embeddings.shape[-1]
    half = n_pairs * samples
    q = embeddings[:half].view(n_pairs, samples, dim)
    p = embeddings[half:].view(n_pairs, samples, dim)
    return grace_rewards(q, p, _half(rollout, slice(0, half)), _half(rollout, slice(half, None)), params.reward)


def policy_step(encoder: GraceEncoder, optimizer, pairs, params: GraceParams, max_grad_norm: float = 1.0) -> dict:
    """One GRPO update on ``pairs``; returns the step's statistics."""
    import torch

    model = encoder.lm.model
    g = params.group_size
    model.eval()  # sampling and scoring without dropout
    rollout = rollout_pairs(encoder, pairs, g, True, params)
    with torch.no_grad(), model.disable_adapter():
        ref_logprobs, _ = forward_states(model, rollout, need_hidden=False)
    model.train()
    logprobs, hidden = forward_states(model, rollout)
    with torch.no_grad():
        emb = pool(hidden.detach(), rollout, encoder.settings.pooling)
        rewards = rewards_for(emb, rollout, len(pairs), g, params)
        advantages = group_relative_advantages(rewards.total, params.normalize_advantages).reshape(-1)
    mask = rollout.policy_mask[:, rollout.rationale_start:].to(logprobs.device)
    parts = grpo_loss(logprobs, logprobs.detach(), ref_logprobs, advantages, mask, params.kl_coef, params.clip_eps)
    optimizer.zero_grad(set_to_none=True)
    parts.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm if max_grad_norm > 0 else math.inf))
    optimizer.step()
    model.eval()
    return {"loss": float(parts.loss.detach()), "reward": float(rewards.total.mean()),
            "reward_contrastive": float(rewards.contrastive.mean()), "kl": parts.kl, "grad_norm": grad_norm,
            "rationale_tokens": sum(rollout.lengths) / len(rollout.lengths),
            "finished": sum(rollout.finished) / len(rollout.finished)}


def held_out_reward(encoder: GraceEncoder, held, batch_size: int, params: GraceParams) -> dict:
    """Mean reward of greedy rationales (what the encoder produces) over held-out batches of ``batch_size``."""
    import torch

    if len(held) < 2:
        return {}
    totals, contrastive = [], []
    for start in range(0, len(held), batch_size):
        chunk = held[start:start + batch_size]
        if len(chunk) < 2:
            break
        with torch.no_grad():
            rollout = rollout_pairs(encoder, chunk, 1, False, params, keep_hidden=True)
            rewards = rewards_for(pool(rollout.hidden, rollout, encoder.settings.pooling), rollout, len(chunk), 1,
                                  params)
        totals.append(float(rewards.total.mean()))
        contrastive.append(float(rewards.contrastive.mean()))
    return {"held_out_reward": sum(totals) / len(totals), "held_out_contrastive": sum(contrastive) / len(contrastive)}


# ------------------------------------------------------------------------------------------- evaluation


def eval_sets_for(recipe, params: GraceParams):
    """The recipe's evaluation sets; STS sets cut to a seeded sample of ``params.eval_sts_pairs`` pairs."""
    from embedkit.training.evaluation import load_eval_sets

    sets = load_eval_sets(recipe.eval, seed=recipe.seed)
    out = []
    for item in sets:
        if item.spec.kind == "sts" and params.eval_sts_pairs and len(item.dataset.pairs) > params.eval_sts_pairs:
            pairs = random.Random(recipe.seed).sample(item.dataset.pairs, params.eval_sts_pairs)
            item = replace(item, dataset=replace(item.dataset, pairs=pairs, subsets=None))
        out.append(item)
    return out


# ------------------------------------------------------------------------------------------- the runner


def _save_checkpoint(encoder, optimizer, out_dir: Path, step: int, log: list) -> None:
    import torch

    from embedkit.atomic import write_text_atomic

    folder = out_dir / f"checkpoint-{step}"
    encoder.save(folder)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    write_text_atomic(folder / STATE_FILE, json.dumps({"global_step": step, "log_history": log}) + "\n")


def _restore(encoder, optimizer, checkpoint: Path) -> tuple[int, list]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(encoder.lm.model, adapter)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    return int(state["global_step"]), list(state["log_history"])


def _write_lines(path: Path, entries: list) -> None:
    from embedkit.atomic import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(e) + "\n" for e in entries))


def _append_line(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def train_grace(recipe, params: GraceParams, out_dir: Path, resume: bool = False):
    import torch
    from tqdm.auto import tqdm
    from transformers import set_seed

    from embedkit.training.checkpoints import prepare_out_dir
    from embedkit.training.evaluation import evaluate_sets
    from embedkit.training.result import TrainResult, results_table, write_run_files
    from embedkit.training.trainer import evaluate_before

    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)
    sources = load_pairs(recipe, params)
    held = held_out_sample(params)
    eval_sets = eval_sets_for(recipe, params)
    set_seed(recipe.seed)
    encoder = create_grace_encoder(params.settings(recipe.model), name=out_dir.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = evaluate_before(encoder, recipe, eval_sets, out_dir)

    steps_per_epoch = max(1, len(batches(sources, recipe.batch_size, recipe.seed, 0)))
    total = recipe.max_steps or max(1, int(recipe.epochs * steps_per_epoch))
    trainable = [p for p in encoder.lm.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    step, log = (0, [])
    if resume_from is not None:
        step, log = _restore(encoder, optimizer, resume_from)
    # The per-step log and the held-out reward curve are written as the run goes (a resumed run first
    # drops what came after its checkpoint); ``tail -f reward_curve.jsonl`` follows a long run.
    log_path, curve_path = out_dir / TRAIN_LOG, out_dir / REWARD_CURVE
    if step == 0 and held:
        log = [{"step": 0, **held_out_reward(encoder, held, recipe.batch_size, params)}]
    _write_lines(log_path, log)
    _write_lines(curve_path, [e for e in log if "held_out_reward" in e])
    started = time.perf_counter()
    epoch_batches: dict[int, list] = {}
    with tqdm(total=total, initial=step, desc="GRACE", unit="step") as bar:
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            if epoch not in epoch_batches:
                epoch_batches = {epoch: batches(sources, recipe.batch_size, recipe.seed, epoch)}
            current = epoch_batches[epoch]
            set_seed(recipe.seed + step)  # a resumed run samples what the uninterrupted one would have
            stats = policy_step(encoder, optimizer, current[index % len(current)], params, recipe.max_grad_norm)
            step += 1
            entry = {"step": step, **{k: round(v, 5) for k, v in stats.items()}}
            if held and (step % params.held_out_every == 0 or step == total):
                entry.update(held_out_reward(encoder, held, recipe.batch_size, params))
                _append_line(curve_path, entry)
            log.append(entry)
            _append_line(log_path, entry)
            if step % recipe.logging_steps == 0 or "held_out_reward" in entry:
                tqdm.write(json.dumps(entry))
            bar.update(1)
            if step % recipe.save_steps == 0 or step == total:  # the last one too: evaluation may be cut short
                _save_checkpoint(encoder, optimizer, out_dir, step, log)
    seconds = time.perf_counter() - started

    result = TrainResult(out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model, steps=step,
                         train_seconds=round(seconds, 1), resumed_from=str(resume_from) if resume_from else None,
                         before=before, during=[e for e in log if "held_out_reward" in e],
                         headline={s.name: s.headline for s in eval_sets})
    result.after = evaluate_sets(encoder, eval_sets, recipe.eval.batch_size) if eval_sets else {}
    encoder.save(out_dir)
    write_run_files(result, _model_card(result, log, results_table(result)))
    return result


def _model_card(result, log: list, table: str) -> str:
    held = [(e["step"], e["held_out_reward"]) for e in log if "held_out_reward" in e]
    curve = ", ".join(f"step {s}: {r:.3f}" for s, r in held) or "not measured"
    return f"""# {Path(result.out_dir).name}

A GRACE encoder (embedkit): the causal LM `{result.base_model}` with a LoRA adapter trained by
contrastive policy optimisation. Load it with `embedkit.models.load_model("{result.out_dir}")`; see the
rationales with `embedkit.generative.grace.encode_with_rationales`.

## Results of the recipe's own evaluation

{table}

Mean held-out reward (greedy rationales): {curve}.

Training: {result.steps} policy steps, {result.train_seconds:.0f} s. Per-step log: `{TRAIN_LOG}`.

## Recipe

```yaml
{result.recipe_yaml.rstrip()}
```
"""


def read_data(recipe, params: GraceParams) -> tuple[int, int]:
    """For ``embedkit train --check``: training pairs over all sources, and the evaluation sets."""
    held_out_sample(params)  # reads (and checks) the held-out sources too
    return sum(len(pairs) for pairs in load_pairs(recipe, params)), len(eval_sets_for(recipe, params))


def _register() -> None:
    from embedkit.training.runners import register_runner

    register_runner("grace", GraceParams, train_grace, read_data=read_data)


_register()
