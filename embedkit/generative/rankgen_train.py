"""The ``rankgen`` training method (``method: rankgen``): a RankGen scorer trained with InfoNCE where a
prefix's candidates are its true continuation, continuations from elsewhere in its document (INBOOK),
LM continuations of the prefix (GEN, cached, see :mod:`embedkit.generative.negatives`) and every other
continuation in the batch.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss`` with dot-product similarity (the
RankGen score) on columns ``anchor`` (prefix, prompt ``pre``), ``positive`` and ``negative_1..k``
(prompt ``suffi``); training is ``SentenceTransformerTrainer`` (checkpoints, ``--resume``, progress
bars). Before, during (every ``eval.steps``) and after training the runner measures suffix
identification on the **dev** slice (training documents set aside by a hash of their id), where the
learning rate and the negatives mix are chosen; the held-out documents are for the final report
(``embedkit rankgen suffix-id RECIPE --split held-out``).

Recipe fields used: ``model`` (the encoder: ``default`` is the packaged all-MiniLM-L6-v2), ``data``
(kind ``beir``: a corpus whose abstracts are split into sentences; kind ``sentences``: windows of a
one-sentence-per-line file), ``batch_size``, ``learning_rate``, ``warmup_ratio``/``warmup_steps``,
``epochs``/``max_steps``, ``max_seq_length``, ``seed`` (training only: the data and the LM negatives
depend on ``params.data_seed``), ``save_steps``, ``logging_steps``, ``eval.steps``, ``eval.sets``.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sentence_transformers.base.evaluation import BaseEvaluator

from embedkit.errors import ConfigError
from embedkit.generative.documents import (Example, Split, corpus_documents, make_examples, split_documents,
                                           wiki_documents)
from embedkit.generative.rankgen import PREFIX_MARKER, SUFFIX_MARKER, RankGenScorer, add_rankgen_prompts, prefix_tail
from embedkit.generative.sampling import SamplingConfig
from embedkit.generative.suffix_id import CandidateSet, candidate_sets, suffix_identification
from embedkit.paths import cache_dir



class NegativeCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_document: int = Field(ge=0)
    lm_generated: int = Field(ge=0)


class RankGenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sentences_per_document: int = Field(12, ge=4)  # data kind sentences: consecutive lines per document
    min_sentences: int = Field(5, ge=2)
    prefix_sentences: int = Field(3, ge=1)
    suffix_sentences: int = Field(1, ge=1)
    train_examples_per_document: int = Field(3, ge=1)  # dev and held-out documents give one prefix each
    held_out_fraction: float = Field(0.15, gt=0, lt=1)  # of all documents, by a hash of the id
    dev_fraction: float = Field(0.1, gt=0, lt=1)  # of the remaining (training) documents
    # seeded samples of each split's prefixes, to bound LM generation time
    max_train_examples: Optional[int] = Field(None, ge=1)
    max_dev_examples: Optional[int] = Field(None, ge=1)
    max_held_out_examples: Optional[int] = Field(None, ge=1)
    negatives: NegativeCounts = NegativeCounts(in_document=2, lm_generated=1)  # per training row: the mix
    eval_candidates: NegativeCounts = NegativeCounts(in_document=3, lm_generated=3)  # per dev/held-out prefix
    lm_negatives_per_training_prefix: int = Field(2, ge=0)  # generated and cached; the mix uses the first ones
    lm: str = "default"  # the LM that writes GEN negatives: default = packaged SmolLM2-135M-Instruct
    sampling: SamplingConfig = SamplingConfig(max_new_tokens=64, max_prefix_tokens=128, one_sentence=True)
    negatives_dir: Optional[str] = None  # default: <cache>/rankgen-negatives/<split>-<hash of everything it depends on>
    data_seed: int = 0  # the prefix cuts, samples and LM negatives; the recipe's seed is the training seed
    scale: float = Field(20.0, gt=0)  # InfoNCE inverse temperature on the dot-product scores

    @model_validator(mode="after")
    def _enough_generated(self) -> "RankGenParams":
        if self.negatives.lm_generated > self.lm_negatives_per_training_prefix:
            raise ValueError(f"negatives.lm_generated ({self.negatives.lm_generated}) exceeds "
                             f"lm_negatives_per_training_prefix ({self.lm_negatives_per_training_prefix})")
        return self


@dataclass
class RankGenData:
    examples: dict[str, list[Example]]  # by split: train, dev, held-out
    lm_negatives: dict[str, dict[str, list[str]]]  # by split, then example id


def build_examples(recipe, params: RankGenParams) -> dict[str, list[Example]]:
    """Examples by split (train / dev / held-out), documents assigned by a hash of their id."""
    path = recipe.data.resolved_path()
    if recipe.data.kind == "beir":
        docs = corpus_documents(path, params.min_sentences)
    elif recipe.data.kind == "sentences":
        docs = wiki_documents(path, params.sentences_per_document, params.min_sentences)
    else:
        raise ConfigError(f"data.kind: method rankgen reads documents (kind beir: a corpus; kind sentences: a "
                          f"one-sentence-per-line file), not {recipe.data.kind}")
    by_split = split_documents(docs, params.held_out_fraction, params.dev_fraction)
    in_doc = max(params.negatives.in_document, params.eval_candidates.in_document)
    out = {}
    for split, split_docs in by_split.items():
        per_doc = params.train_examples_per_document if split == "train" else 1
        examples = make_examples(split_docs, params.prefix_sentences, params.suffix_sentences, in_doc, per_doc,
                                 seed=params.data_seed)
        limit = {"train": params.max_train_examples, "dev": params.max_dev_examples,
                 "held-out": params.max_held_out_examples}[split]
        if limit and len(examples) > limit:
            examples = random.Random(f"{params.data_seed}:{split}").sample(examples, limit)
        out[split] = examples
    if not out["train"]:
        raise ConfigError(f"{path}: no training documents with {params.min_sentences}+ sentences")
    return out


def lm_negatives(recipe, params: RankGenParams, examples: dict[str, list[Example]], splits=None,
                 show_progress: bool = True) -> dict[str, dict[str, list[str]]]:
    """Generate (or finish, or just read) the cached LM negatives of the given splits (default: all)."""
    from embedkit.generative.lm import load_causal_lm, resolve_lm_path
    from embedkit.generative.negatives import generate_negatives, manifest_key, negatives_manifest

    splits = list(examples) if splits is None else list(splits)
    counts = {s: params.lm_negatives_per_training_prefix if s == "train" else params.eval_candidates.lm_generated
              for s in splits}
    if not any(counts.values()):
        return {s: {} for s in splits}
    lm_name = resolve_lm_path(params.lm)[1]
    lm, out = None, {}
    for split in splits:
        if counts[split] == 0:
            out[split] = {}
            continue
        manifest = negatives_manifest(examples[split], lm_name, counts[split], params.sampling, params.data_seed, 16)
        folder = (Path(params.negatives_dir) / split if params.negatives_dir
                  else cache_dir() / "rankgen-negatives" / f"{split}-{manifest_key(manifest)}")
        lm = lm or load_causal_lm(params.lm)
        out[split] = generate_negatives(examples[split], lm, folder, num_per_prefix=counts[split],
                                        sampling=params.sampling, seed=params.data_seed, show_progress=show_progress)
    return out


def load_data(recipe, params: RankGenParams, splits=None, show_progress: bool = True) -> RankGenData:
    examples = build_examples(recipe, params)
    return RankGenData(examples, lm_negatives(recipe, params, examples, splits, show_progress))


def eval_sets(data: RankGenData, params: RankGenParams, split: Split) -> list[CandidateSet]:
    c = params.eval_candidates
    return candidate_sets(data.examples[split], data.lm_negatives.get(split, {}), c.in_document, c.lm_generated)


def training_columns(train: list[Example], lm_negs: dict[str, list[str]], mix: NegativeCounts) -> dict[str, list]:
    """anchor/positive/negative_1..k with ``mix`` negatives per row (rows short of them are left out)."""
    sets = candidate_sets(train, lm_negs, mix.in_document, mix.lm_generated)
    columns = {"anchor": [prefix_tail(s.prefix) for s in sets], "positive": [s.candidates[0] for s in sets]}
    for i in range(mix.in_document + mix.lm_generated):
        columns[f"negative_{i + 1}"] = [s.candidates[1 + i] for s in sets]
    return columns


class SuffixIdEvaluator(BaseEvaluator):
    """Suffix identification on fixed candidate sets, for the trainer's evaluation every ``eval.steps``."""

    def __init__(self, sets: list[CandidateSet], name: str, max_seq_length: int):
        super().__init__()
        self.sets, self.name, self.max_seq_length = sets, name, max_seq_length
        self.primary_metric = f"{name}_accuracy_all"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        training_length, model.max_seq_length = model.max_seq_length, self.max_seq_length
        try:
            result = suffix_identification(RankGenScorer(model), self.sets)
        finally:
            model.max_seq_length = training_length
        return {f"{self.name}_{k}": v for k, v in result.items() if k.startswith("accuracy_")}


def train_rankgen(recipe, params: RankGenParams, out_dir: Path, resume: bool = False):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.util import dot_score
    from transformers import set_seed

    from embedkit.models import load_model
    from embedkit.training.checkpoints import prepare_out_dir
    from embedkit.training.evaluation import evaluate_sets, load_eval_sets
    from embedkit.training.result import TrainResult, evaluation_log, model_card, write_run_files

    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)
    data = load_data(recipe, params, splits=["train", "dev"])
    dev = eval_sets(data, params, "dev")
    extra_sets = load_eval_sets(recipe.eval, seed=recipe.seed)
    columns = training_columns(data.examples["train"], data.lm_negatives["train"], params.negatives)

    model = load_model(recipe.model)
    inference_length = model.max_seq_length
    add_rankgen_prompts(model)
    before = {"suffix-id-dev": suffix_identification(RankGenScorer(model), dev)} if recipe.eval.before else {}
    if recipe.eval.before and extra_sets:
        before.update(evaluate_sets(model, extra_sets, recipe.eval.batch_size))

    negative_columns = [c for c in columns if c.startswith("negative_")]
    during = recipe.eval.steps is not None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay, warmup_steps=recipe.warmup_ratio or recipe.warmup_steps,
        num_train_epochs=recipe.epochs, max_steps=recipe.max_steps or -1, max_grad_norm=recipe.max_grad_norm,
        bf16=recipe.precision == "bf16", fp16=recipe.precision == "fp16", seed=recipe.seed, data_seed=recipe.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="steps", save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit, logging_steps=recipe.logging_steps, logging_first_step=True,
        eval_strategy="steps" if during else "no", eval_steps=recipe.eval.steps if during else None,
        report_to="none", run_name=recipe.name,
        prompts={"anchor": PREFIX_MARKER, "positive": SUFFIX_MARKER, **{c: SUFFIX_MARKER for c in negative_columns}},
    )
    set_seed(recipe.seed)
    loss = MultipleNegativesRankingLoss(model, scale=params.scale, similarity_fct=dot_score)
    evaluator = SuffixIdEvaluator(dev, "suffix-id-dev", inference_length) if during else None
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss,
                                         evaluator=evaluator)
    model.max_seq_length = recipe.max_seq_length or inference_length
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    model.max_seq_length = inference_length

    add_rankgen_prompts(model)
    after = {"suffix-id-dev": suffix_identification(RankGenScorer(model), dev)}
    if extra_sets:
        after.update(evaluate_sets(model, extra_sets, recipe.eval.batch_size))
    headline = {"suffix-id-dev": "accuracy_all", **{s.name: s.headline for s in extra_sets}}
    result = TrainResult(out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model,
                         steps=trainer.state.global_step, train_seconds=round(seconds, 1),
                         resumed_from=str(resume_from) if resume_from else None, before=before, after=after,
                         during=evaluation_log(trainer.state.log_history),
                         headline=headline)
    model.save(str(out_dir), create_model_card=False)
    write_run_files(result, model_card(result) + _card_note(len(columns["anchor"]), len(dev), params.negatives))
    return result


def _card_note(n_train: int, n_dev: int, mix: NegativeCounts) -> str:
    return (f"\n\n## RankGen\n\nA RankGen scorer: prefixes take the prompt `prefix` (`{PREFIX_MARKER.strip()}`), "
            f"continuations `suffix` (`{SUFFIX_MARKER.strip()}`); a pair scores the dot product. Trained on "
            f"{n_train} prefixes, each with {mix.in_document} in-document and {mix.lm_generated} LM-generated "
            f"negatives plus the batch's other continuations; suffix identification measured on {n_dev} dev "
            "prefixes (training documents set aside).\n")


def read_data(recipe, params: RankGenParams) -> tuple[int, int]:
    """For ``embedkit train --check``: training prefixes and evaluation sets (the dev slice + eval.sets)."""
    from embedkit.training.evaluation import load_eval_sets

    examples = build_examples(recipe, params)
    return len(examples["train"]), 1 + len(load_eval_sets(recipe.eval, seed=recipe.seed))


def _register() -> None:
    from embedkit.training.runners import register_runner

    register_runner("rankgen", RankGenParams, train_rankgen, read_data=read_data)


_register()
