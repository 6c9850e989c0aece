"""The ``rankgen`` training method (``method: rankgen``): a RankGen scorer trained with InfoNCE where a
prefix's candidates are its true continuation, continuations from elsewhere in its document, LM
continuations of the prefix (cached, see :mod:`embedkit.generative.negatives`) and every other
continuation in the batch.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss`` with dot-product similarity (the
RankGen score) on columns ``anchor`` (prefix, prompt ``pre``), ``positive`` and ``negative_1..k``
(prompt ``suffi``); training is ``SentenceTransformerTrainer``. Before and after training, the
runner measures suffix identification on held-out documents (:func:`suffix_identification`).

Recipe fields used: ``model`` (the encoder: ``default`` is the packaged all-MiniLM-L6-v2), ``data``
(kind ``sentences``: a one-sentence-per-line file read as consecutive-sentence documents),
``batch_size``, ``learning_rate``, ``warmup_ratio``/``warmup_steps``, ``epochs``/``max_steps``,
``max_seq_length``, ``seed``, ``save_steps``, ``logging_steps``, ``eval``. ``params`` below.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from embedkit.errors import ConfigError
from embedkit.generative.documents import (Example, corpus_documents, make_examples, split_examples,
                                           wiki_documents)
from embedkit.generative.rankgen import (PREFIX_MARKER, SUFFIX_MARKER, RankGenScorer, add_rankgen_prompts,
                                         prefix_tail)
from embedkit.generative.sampling import SamplingConfig
from embedkit.paths import cache_dir, resolve_data_path


class RankGenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: Optional[str] = "scifact"  # more documents: a BEIR folder or corpus file (abstracts split into sentences)
    sentences_per_document: int = Field(12, ge=4)  # wiki: consecutive lines per document
    prefix_sentences: int = Field(3, ge=1)
    suffix_sentences: int = Field(1, ge=1)
    examples_per_document: int = Field(1, ge=1)
    in_doc_negatives: int = Field(2, ge=0)
    lm_negatives: int = Field(2, ge=0)
    lm: str = "default"  # the LM that writes negatives: default = packaged SmolLM2-135M-Instruct
    sampling: SamplingConfig = SamplingConfig(max_new_tokens=32)
    negatives_dir: Optional[str] = None  # default: <cache>/rankgen-negatives/<hash of the settings>
    held_out_fraction: float = Field(0.1, gt=0, lt=1)
    max_train_examples: Optional[int] = Field(None, ge=1)  # a seeded sample, to bound LM generation time
    max_held_out_examples: Optional[int] = Field(200, ge=1)
    scale: float = Field(20.0, gt=0)  # InfoNCE inverse temperature on the dot-product scores


def build_examples(recipe, params: RankGenParams) -> tuple[list[Example], list[Example]]:
    """(train, held-out) examples, split by document; each side optionally a seeded sample."""
    docs = wiki_documents(recipe.data.resolved_path(), params.sentences_per_document)
    if params.corpus:
        docs += corpus_documents(resolve_data_path(params.corpus))
    examples = make_examples(docs, params.prefix_sentences, params.suffix_sentences, params.in_doc_negatives,
                             params.examples_per_document, seed=recipe.seed)
    train, held = split_examples(examples, params.held_out_fraction)
    rng = random.Random(recipe.seed)
    if params.max_train_examples and len(train) > params.max_train_examples:
        train = rng.sample(train, params.max_train_examples)
    if params.max_held_out_examples and len(held) > params.max_held_out_examples:
        held = rng.sample(held, params.max_held_out_examples)
    return train, held


def negatives_folder(recipe, params: RankGenParams, split: str) -> Path:
    if params.negatives_dir:
        return Path(params.negatives_dir) / split
    key = json.dumps({"data": str(recipe.data.path), **params.model_dump(mode="json", exclude={"negatives_dir",
                      "scale"}), "seed": recipe.seed}, sort_keys=True)
    return cache_dir() / "rankgen-negatives" / hashlib.sha256(key.encode()).hexdigest()[:12] / split


def lm_negatives(recipe, params: RankGenParams, train: list[Example], held: list[Example],
                 show_progress: bool = True) -> tuple[dict, dict]:
    """Generate (or finish, or just read) the cached LM negatives of both splits."""
    from embedkit.generative.lm import load_causal_lm
    from embedkit.generative.negatives import generate_negatives

    if params.lm_negatives == 0:
        return {}, {}
    lm = load_causal_lm(params.lm)
    out = []
    for split, examples in (("train", train), ("held-out", held)):
        out.append(generate_negatives(examples, lm, negatives_folder(recipe, params, split),
                                      num_per_prefix=params.lm_negatives, sampling=params.sampling, seed=recipe.seed,
                                      show_progress=show_progress))
    return out[0], out[1]


def candidates_for(example: Example, lm_negs: dict[str, list[str]]) -> list[str]:
    """The true continuation first, then in-document, then LM-generated negatives."""
    return [example.suffix, *example.in_doc_negatives, *lm_negs.get(example.id, [])]


def suffix_identification(scorer: RankGenScorer, held: list[Example], lm_negs: dict[str, list[str]]) -> dict:
    """Accuracy (x100) of picking the true continuation among its candidates, overall and against
    each kind of negative alone (chance = 100 / number of candidates)."""
    from embedkit.generative.metrics import suffix_identification_accuracy

    prefixes = [e.prefix for e in held]
    result = {"n_prefixes": len(held)}
    kinds = {"all": [candidates_for(e, lm_negs) for e in held],
             "in_document": [[e.suffix, *e.in_doc_negatives] for e in held],
             "lm_generated": [[e.suffix, *lm_negs.get(e.id, [])] for e in held]}
    for name, cands in kinds.items():
        if all(len(c) > 1 for c in cands):
            result[f"accuracy_{name}"] = 100 * suffix_identification_accuracy(scorer, prefixes, cands)
            result[f"candidates_{name}"] = len(cands[0]) if cands else 0
    return result


def training_columns(train: list[Example], lm_negs: dict[str, list[str]]) -> dict[str, list]:
    """anchor/positive/negative_1..k; examples short of negatives are dropped (columns must be full)."""
    rows = [(e.prefix, candidates_for(e, lm_negs)) for e in train]
    k = max((len(c) - 1 for _, c in rows), default=0)
    rows = [(p, c) for p, c in rows if len(c) - 1 == k]
    columns = {"anchor": [prefix_tail(p) for p, _ in rows], "positive": [c[0] for _, c in rows]}
    for i in range(k):
        columns[f"negative_{i + 1}"] = [c[1 + i] for _, c in rows]
    return columns


def train_rankgen(recipe, params: RankGenParams, out_dir: Path, resume: bool = False):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.util import dot_score
    from transformers import set_seed

    from embedkit.models import load_model
    from embedkit.training.checkpoints import prepare_out_dir
    from embedkit.training.evaluation import evaluate_sets, load_eval_sets
    from embedkit.training.result import TrainResult, model_card, write_results, write_text_atomic

    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    if recipe.data.kind != "sentences":
        raise ConfigError(f"data.kind: method rankgen reads a one-sentence-per-line file (kind sentences), "
                          f"not {recipe.data.kind}")
    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)
    train, held = build_examples(recipe, params)
    eval_sets = load_eval_sets(recipe.eval, seed=recipe.seed)
    train_negs, held_negs = lm_negatives(recipe, params, train, held)
    columns = training_columns(train, train_negs)

    model = load_model(recipe.model)
    inference_length = model.max_seq_length
    scorer = RankGenScorer(model)
    before = {"suffix-id-held-out": suffix_identification(scorer, held, held_negs)}
    if recipe.eval.before and eval_sets:
        before.update(evaluate_sets(model, eval_sets, recipe.eval.batch_size))

    negative_columns = [c for c in columns if c.startswith("negative_")]
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay, warmup_steps=recipe.warmup_ratio or recipe.warmup_steps,
        num_train_epochs=recipe.epochs, max_steps=recipe.max_steps or -1, max_grad_norm=recipe.max_grad_norm,
        bf16=recipe.precision == "bf16", fp16=recipe.precision == "fp16", seed=recipe.seed, data_seed=recipe.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="steps", save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit, logging_steps=recipe.logging_steps, logging_first_step=True,
        report_to="none", run_name=recipe.name,
        prompts={"anchor": PREFIX_MARKER, "positive": SUFFIX_MARKER, **{c: SUFFIX_MARKER for c in negative_columns}},
    )
    set_seed(recipe.seed)
    loss = MultipleNegativesRankingLoss(model, scale=params.scale, similarity_fct=dot_score)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
    model.max_seq_length = recipe.max_seq_length or inference_length
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    model.max_seq_length = inference_length

    add_rankgen_prompts(model)
    after = {"suffix-id-held-out": suffix_identification(scorer, held, held_negs)}
    if eval_sets:
        after.update(evaluate_sets(model, eval_sets, recipe.eval.batch_size))
    headline = {"suffix-id-held-out": "accuracy_all", **{s.name: s.headline for s in eval_sets}}
    result = TrainResult(out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model,
                         steps=trainer.state.global_step, train_seconds=round(seconds, 1),
                         resumed_from=str(resume_from) if resume_from else None, before=before, after=after,
                         headline=headline)
    model.save(str(out_dir), create_model_card=False)
    write_text_atomic(out_dir / "recipe.yaml", result.recipe_yaml)
    write_results(result)
    write_text_atomic(out_dir / "README.md", model_card(result) + _card_note(len(columns["anchor"]),
                                                                             len(held), negative_columns))
    return result


def _card_note(n_train: int, n_held: int, negatives: list[str]) -> str:
    return (f"\n\n## RankGen\n\nA RankGen scorer: prefixes take the prompt `prefix` (`{PREFIX_MARKER.strip()}`), "
            f"continuations `suffix` (`{SUFFIX_MARKER.strip()}`); a pair scores the dot product. Trained on "
            f"{n_train} prefixes with {len(negatives)} negatives each (in-document and LM-generated) plus in-batch "
            f"continuations; suffix identification measured on {n_held} held-out prefixes.\n")


def _register() -> None:
    from embedkit.training.runners import register_runner

    register_runner("rankgen", RankGenParams, train_rankgen)


_register()
