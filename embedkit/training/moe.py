"""The ``moe`` method: one model, N domains, each routed to its own experts (Kapur, Hallee et al. 2024).

Training (``embedkit train training/moe-domains.yaml``): every domain's pairs form one dataset; the
trainer draws each batch from one domain (sentence-transformers' multi-dataset batch samplers) and
:class:`DomainRoutedLoss` routes the whole batch to that domain's experts, then applies the recipe's
``loss`` (InfoNCE / Multiple Negatives Ranking) with in-batch negatives from the same domain.

``params.architecture: dense`` trains the same data without experts -- the "one model on all domains
mixed" baseline -- and ``params.only: [science]`` trains on a subset (with ``dense``: the "N separate
models" baseline, one run per domain). Each domain is evaluated on its own set, MoE models routed to the
domain's experts; STS domains that share a file are also pooled into one Spearman over all their pairs.
A domain's ``eval`` set is what the recipe is chosen on (a dev split): it runs before and after training
and, with ``eval.steps``, every N steps during it. Its ``test`` set is scored only in the final run of a
recipe (``--set eval.final=true``), before and after training, never during -- as ``eval.test_sets`` for
the other methods.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sentence_transformers.base.evaluation import BaseEvaluator
from torch import Tensor, nn

from embedkit.data.snli import snli_pairs, snli_triplets
from embedkit.errors import ConfigError, DataError
from embedkit.paths import resolve_data_path
from embedkit.training.recipe import Recipe
from embedkit.training.result import TrainResult


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainEval(_Strict):
    """How a domain is scored: beir nDCG@10, sts Spearman (of ``genres`` only, if given), or triplets
    (share of triplets whose positive is closer to the anchor than the negative)."""

    kind: Literal["beir", "sts", "triplets"]
    path: str
    split: str = "test"
    genres: list[str] = []
    max_queries: Optional[int] = Field(None, ge=1)  # beir: a seeded subset (see training.evaluation.subset_beir)
    max_documents: Optional[int] = Field(None, ge=1)
    limit: Optional[int] = Field(None, ge=1)  # sts, triplets: the first N only


class DomainSpec(_Strict):
    """One domain's training pairs.

    kinds: ``beir`` (query, judged-relevant document) of ``split`` (default train); ``sts`` pairs of
    ``genres`` (STS-B's ``main-forum``/``main-forums`` spellings are one genre) scored at least
    ``min_score``; ``nli`` (premise, entailment hypothesis) from a SentEval SNLI folder's ``split``;
    ``pairs`` any pairs file; ``cocitation`` papers co-cited at least ``min_count`` times (a papers JSONL).
    """

    name: str
    kind: Literal["beir", "sts", "nli", "pairs", "cocitation"]
    path: str
    split: Optional[str] = None
    genres: list[str] = []
    min_score: Optional[float] = None
    min_count: int = Field(1, ge=1)
    limit: Optional[int] = Field(None, ge=1)
    eval: Optional[DomainEval] = None  # chosen on: a dev split
    test: Optional[DomainEval] = None  # scored only in the final run (eval.final)

    @model_validator(mode="after")
    def _defaults(self) -> "DomainSpec":
        if self.split is None:
            self.split = {"beir": "train", "sts": "train", "nli": "dev"}.get(self.kind)
        if self.genres and self.kind != "sts":
            raise ValueError("genres is only for kind sts")
        if self.eval is not None and self.eval.split == "test":
            raise ValueError(f"domain {self.name!r}: eval is what the recipe is chosen on, so not a test split; "
                             "move it to test (scored with --set eval.final=true) and select on dev")
        return self


class MoEParams(_Strict):
    domains: list[DomainSpec] = Field(min_length=1)
    architecture: Literal["moe", "dense"] = "moe"
    only: Optional[list[str]] = None  # train and evaluate these domains only
    expert_layers: Optional[list[int]] = None  # None: every layer
    learned_router: bool = False  # the router extension (see embedkit.modules.moe)
    router_weight: float = Field(0.1, ge=0)
    sampling: Literal["round_robin", "proportional"] = "round_robin"
    collapse_threshold: float = Field(0.05, ge=0, lt=1)
    collapse_patience: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "MoEParams":
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"domain names must be distinct, got {names}")
        unknown = sorted(set(self.only or []) - set(names))
        if unknown:
            raise ValueError(f"only: unknown domain(s) {', '.join(unknown)}; domains: {', '.join(names)}")
        if self.learned_router and self.architecture != "moe":
            raise ValueError("learned_router needs architecture moe")
        return self

    def active(self) -> list[DomainSpec]:
        return [d for d in self.domains if self.only is None or d.name in self.only]


# ------------------------------------------------------------------------------------- domain data


def domain_pairs(spec: DomainSpec) -> list[tuple[str, str]]:
    """The domain's (anchor, positive) training pairs, ``limit`` applied."""
    from embedkit import data
    from embedkit.data.records import normalize_genre
    from embedkit.training.cocitation import cocitation_pairs
    from embedkit.training.datasets import document_text, relevant_pairs

    path = resolve_data_path(spec.path)
    if spec.kind == "beir":
        dataset = data.load_beir(path, split=spec.split)
        pairs = [(dataset.queries[q], document_text(dataset.corpus[d])) for q, d in relevant_pairs(dataset)]
    elif spec.kind == "sts":
        genres = {normalize_genre(g) for g in spec.genres}
        minimum = spec.min_score if spec.min_score is not None else float("-inf")
        pairs = [(p.sentence1, p.sentence2) for p in data.load_sts(path, split=spec.split).pairs
                 if (not genres or normalize_genre(p.genre) in genres) and p.score >= minimum]
    elif spec.kind == "nli":
        pairs = snli_pairs(path, spec.split, "entailment")
    elif spec.kind == "pairs":
        pairs = data.load_pairs(path)
    else:
        pairs = cocitation_pairs(path, min_count=spec.min_count)
    pairs = pairs[: spec.limit]
    if not pairs:
        raise DataError(f"domain {spec.name!r}: no training pairs ({spec.kind}, split {spec.split}, "
                        f"genres {spec.genres or 'all'})", path=path)
    return pairs


# ------------------------------------------------------------------------------------------- loss


class DomainRoutedLoss(nn.Module):
    """``loss`` with every row of the batch routed to ``domain``'s experts (enforced routing).

    Sets ``domain_ids`` on every column's features, which :class:`embedkit.modules.MoETransformer`
    reads. With a learned router, adds ``router_weight`` x the cross-entropy of the router's prediction
    for the first column against ``domain`` (the router extension).
    """

    def __init__(self, loss: nn.Module, domain_index: int, router_weight: float = 0.0):
        super().__init__()
        self.loss, self.domain_index, self.router_weight = loss, domain_index, router_weight

    @property
    def model(self):
        return self.loss.model

    def forward(self, sentence_features, labels: Tensor | None = None) -> Tensor:
        from embedkit.modules.moe import moe_modules

        features = list(sentence_features)
        for column in features:
            rows = column["input_ids"].size(0)
            column["domain_ids"] = torch.full((rows,), self.domain_index, dtype=torch.long,
                                              device=column["input_ids"].device)
        value = self.loss(features, labels)
        moe = moe_modules(self.loss.model)
        if self.router_weight and moe and moe[0].domain_router is not None:
            logits = moe[0].router_logits(features[0])
            target = torch.full((logits.size(0),), self.domain_index, dtype=torch.long, device=logits.device)
            value = value + self.router_weight * nn.functional.cross_entropy(logits, target)
        return value


# ------------------------------------------------------------------------------------- evaluation

HEADLINE = {"beir": "ndcg@10", "sts": "spearman", "triplets": "accuracy"}


@dataclass(frozen=True)
class LoadedDomainEval:
    domain: str
    spec: DomainEval
    dataset: object  # BEIRDataset, STSDataset (genre-filtered) or a list of triplets
    final_only: bool = False  # a domain's test set: never scored during training

    @property
    def name(self) -> str:
        genres = f"-{'+'.join(self.spec.genres)}" if self.spec.genres else ""
        return f"{self.domain}:{Path(self.spec.path).name}-{self.spec.split}{genres}"


def load_domain_evals(domains: Sequence[DomainSpec], seed: int = 0, final: bool = False) -> list[LoadedDomainEval]:
    """Each domain's ``eval`` set and, when ``final``, its ``test`` set."""
    from embedkit import data
    from embedkit.data.records import normalize_genre
    from embedkit.training.evaluation import subset_beir

    loaded = []
    for domain, spec, final_only in [(d, d.eval, False) for d in domains] + [(d, d.test, True) for d in domains]:
        if spec is None or (final_only and not final):
            continue
        path = resolve_data_path(spec.path)
        if spec.kind == "beir":
            dataset = subset_beir(data.load_beir(path, split=spec.split), spec.max_queries, spec.max_documents, seed)
        elif spec.kind == "sts":
            full = data.load_sts(path, split=spec.split)
            genres = {normalize_genre(g) for g in spec.genres}
            dataset = replace(full, pairs=[p for p in full.pairs if not genres or normalize_genre(p.genre) in genres]
                              [: spec.limit], subsets=None)
            if not dataset.pairs:
                raise DataError(f"domain {domain.name!r}: no {spec.split} pairs of genres {spec.genres}", path=path)
        else:
            dataset = snli_triplets(path, spec.split) if path.is_dir() else \
                [(t.anchor, t.positive, t.negative) for t in data.load_triplets(path) if t.negative]
            dataset = dataset[: spec.limit]
            if not dataset:
                raise DataError(f"domain {domain.name!r}: no triplets", path=path)
        loaded.append(LoadedDomainEval(domain.name, spec, dataset, final_only))
    return loaded


def _encode(model, texts: list[str], batch_size: int):
    from embedkit.encoding import cached_encode

    return cached_encode(model, texts, batch_size=batch_size, normalize=True, show_progress=len(texts) > 2000)


def _pair_cosines(model, pairs: Sequence[tuple[str, str]], batch_size: int):
    left = _encode(model, [a for a, _ in pairs], batch_size)
    right = _encode(model, [b for _, b in pairs], batch_size)
    return (left * right).sum(axis=1)


def triplet_accuracy(model, triplets: Sequence[tuple[str, str, str]], batch_size: int = 64) -> dict:
    """x100 share of triplets with cos(anchor, positive) > cos(anchor, negative). The one-line metric is
    computed here (not with sentence-transformers' TripletEvaluator) so the embedding cache serves it."""
    anchors = _encode(model, [t[0] for t in triplets], batch_size)
    positives = _encode(model, [t[1] for t in triplets], batch_size)
    negatives = _encode(model, [t[2] for t in triplets], batch_size)
    wins = ((anchors * positives).sum(1) > (anchors * negatives).sum(1)).mean()
    return {"accuracy": 100 * float(wins), "n_triplets": len(triplets)}


def evaluate_domains(models: dict[str, tuple[object, Optional[str]]], evals: Sequence[LoadedDomainEval],
                     batch_size: int = 64) -> dict:
    """``{eval name: metrics}``: each domain's set scored by ``models[domain] = (model, route)``, under
    ``routed(model, route)``; STS sets that share a file are also pooled into ``all:<file>-<split>``."""
    from scipy.stats import spearmanr

    from embedkit.evaluation import evaluate_retrieval, evaluate_sts
    from embedkit.modules import routed

    results: dict[str, dict] = {}
    pooled: dict[tuple[str, str], list] = {}
    for item in evals:
        model, route = models[item.domain]
        with routed(model, route):
            if item.spec.kind == "beir":
                metrics = evaluate_retrieval(model, item.dataset, batch_size=batch_size)
            elif item.spec.kind == "sts":
                metrics = evaluate_sts(model, item.dataset, batch_size=batch_size, show_progress=False)
                pairs = [(p.sentence1, p.sentence2) for p in item.dataset.pairs]
                pooled.setdefault((item.spec.path, item.spec.split), []).append(
                    (_pair_cosines(model, pairs, batch_size), [p.score for p in item.dataset.pairs]))
            else:
                metrics = triplet_accuracy(model, item.dataset, batch_size)
        results[item.name] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    for (path, split), parts in pooled.items():
        if len(parts) > 1:
            import numpy as np

            cosines = np.concatenate([c for c, _ in parts])
            gold = [s for _, scores in parts for s in scores]
            results[f"all:{Path(path).name}-{split}"] = {"spearman": 100 * float(spearmanr(cosines, gold)[0]),
                                                         "n_pairs": len(gold)}
    return results


def headlines(results: dict, evals: Sequence[LoadedDomainEval]) -> dict:
    names = {item.name: HEADLINE[item.spec.kind] for item in evals}
    return {name: names.get(name, "spearman") for name in results}


class DomainEvaluator(BaseEvaluator):
    """:func:`evaluate_domains` as the trainer's evaluator, every ``eval.steps``: each domain's set
    scored with ``routes[domain]`` (its experts, or None for a dense model); the first set's headline
    metric is primary. Scores at ``max_seq_length`` (the inference length), whatever the training length."""

    def __init__(self, evals: Sequence[LoadedDomainEval], routes: dict[str, Optional[str]], batch_size: int,
                 max_seq_length: int):
        super().__init__()
        self.evals, self.routes, self.batch_size, self.max_seq_length = evals, routes, batch_size, max_seq_length
        self.primary_metric = f"{evals[0].name}_{HEADLINE[evals[0].spec.kind]}"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        training_length, model.max_seq_length = model.max_seq_length, self.max_seq_length
        try:
            results = evaluate_domains({d: (model, r) for d, r in self.routes.items()}, self.evals, self.batch_size)
        finally:
            model.max_seq_length = training_length
        return {f"{name}_{key}": value for name, metrics in results.items() for key, value in metrics.items()
                if key in (*HEADLINE.values(), "pearson")}


# ------------------------------------------------------------------------------------------ runner


def train_moe(recipe: Recipe, params: MoEParams, out_dir: Path, resume: bool = False) -> TrainResult:
    from datasets import DatasetDict
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.base.sampler import MultiDatasetBatchSamplers
    from transformers import set_seed

    from embedkit.losses import InfoNCELoss
    from embedkit.models import load_model
    from embedkit.modules import to_moe
    from embedkit.training.callbacks import NonFiniteLossGuard
    from embedkit.training.checkpoints import prepare_out_dir
    from embedkit.training.collapse import CollapseGuard
    from embedkit.training.datasets import to_dataset
    from embedkit.training.result import evaluation_log, write_run_files
    from embedkit.training.trainer import check_length

    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)
    domains = params.active()
    names = [d.name for d in domains]
    # 1. Data and evaluation sets before any model, so a bad file fails first.
    train_data = {d.name: to_dataset({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
                  for d, pairs in ((d, domain_pairs(d)) for d in domains)}
    evals = load_domain_evals(domains, seed=recipe.seed, final=recipe.eval.final)
    dev_evals = [item for item in evals if not item.final_only]
    args = moe_training_arguments(recipe, out_dir, evaluate_during=bool(dev_evals))
    args.multi_dataset_batch_sampler = (MultiDatasetBatchSamplers.ROUND_ROBIN if params.sampling == "round_robin"
                                        else MultiDatasetBatchSamplers.PROPORTIONAL)

    # 2. The base model, evaluated as it is (before any experts: they start as exact copies anyway).
    base = load_model(recipe.model)
    inference_length = base.max_seq_length = recipe.eval.max_seq_length or base.max_seq_length
    check_length(base, recipe.max_seq_length)
    before = _evaluate_before(base, names, evals, recipe, out_dir) if args.should_save else {}

    # 3. Experts, and one loss per domain that routes its batches.
    moe = params.architecture == "moe"
    set_seed(recipe.seed)  # the learned router (if any) is freshly initialised
    model = to_moe(base, names, params.expert_layers, learned_router=params.learned_router) if moe else base
    inner = recipe.loss.build(model) if recipe.loss is not None else InfoNCELoss(model)
    losses = {name: DomainRoutedLoss(inner, i, params.router_weight) if moe else inner for i, name in enumerate(names)}
    finite = NonFiniteLossGuard(inner)
    collapse = CollapseGuard(model, params.collapse_threshold, params.collapse_patience)
    routes = {n: n if moe else None for n in names}
    evaluator = DomainEvaluator(dev_evals, routes, recipe.eval.batch_size, inference_length) \
        if dev_evals and recipe.eval.steps else None
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=DatasetDict(train_data), loss=losses,
                                         evaluator=evaluator, callbacks=[finite, collapse])
    model.max_seq_length = recipe.max_seq_length or inference_length
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    finite.check(out_dir)
    collapse.check()
    model.max_seq_length = inference_length

    # 4. Evaluate each domain (routed to its experts) and save.
    result = TrainResult(
        out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model, steps=trainer.state.global_step,
        train_seconds=round(seconds, 1), resumed_from=str(resume_from) if resume_from else None, before=before,
        during=sorted([{"step": step, "embedding_spread": spread} for step, spread in collapse.history]
                      + evaluation_log(trainer.state.log_history),
                      key=lambda entry: entry["step"]),
    )
    if args.should_save:
        result.after = evaluate_domains({n: (model, r) for n, r in routes.items()}, evals, recipe.eval.batch_size)
        result.headline = headlines(result.after, evals)
        model.save(str(out_dir), create_model_card=False)
        write_run_files(result)
    return result


def _evaluate_before(base, names: list[str], evals, recipe: Recipe, out_dir: Path) -> dict:
    from embedkit.atomic import write_text_atomic

    if not recipe.eval.before or not evals:
        return {}
    saved = out_dir / "results-before.json"
    if saved.exists():
        cached = json.loads(saved.read_text(encoding="utf-8"))
        if all(item.name in cached for item in evals):
            return cached
    before = evaluate_domains({n: (base, None) for n in names}, evals, recipe.eval.batch_size)
    write_text_atomic(saved, json.dumps(before, indent=2) + "\n")
    return before


def moe_training_arguments(recipe: Recipe, out_dir: Path, evaluate_during: bool = False):
    """The contrastive trainer's arguments (batches without repeated texts for in-batch negatives);
    ``evaluate_during``: there are domain sets to score every ``eval.steps``."""
    from embedkit.training.loss_specs import InfoNCESpec
    from embedkit.training.trainer import training_arguments

    if recipe.loss is not None and not recipe.loss.in_batch_negatives:
        raise ConfigError(f"loss: method moe trains on pairs with in-batch negatives; {recipe.loss.name} does not")
    return training_arguments(recipe if recipe.loss is not None
                              else recipe.model_copy(update={"loss": InfoNCESpec(name="infonce")}), out_dir,
                              evaluate_during=evaluate_during)


def evaluate_separate(recipe: Recipe, folders: dict[str, Union[str, Path]]) -> dict:
    """The "N separate models" row: each domain scored by its own model (``{domain: model folder}``); the
    domains' test sets too when the recipe's ``eval.final`` is set."""
    from embedkit.models import load_model
    from embedkit.training.runners import validate_params

    params: MoEParams = validate_params(recipe)
    unknown = sorted(set(folders) - {d.name for d in params.domains})
    if unknown:
        raise ConfigError(f"unknown domain(s) {', '.join(unknown)}; the recipe's domains: "
                          f"{', '.join(d.name for d in params.domains)}")
    domains = [d for d in params.domains if d.name in folders]
    evals = load_domain_evals(domains, seed=recipe.seed, final=recipe.eval.final)
    models = {name: (load_model(str(folder)), None) for name, folder in folders.items()}
    for model, _ in models.values():
        model.max_seq_length = recipe.eval.max_seq_length or model.max_seq_length  # as the runner evaluates
    return evaluate_domains(models, evals, recipe.eval.batch_size)


def main(argv: list[str] | None = None) -> int:
    """``python -m embedkit.training.moe RECIPE domain=FOLDER ... [--set KEY=VALUE] [--record PATH]``: print the
    separate-models row as JSON; with ``--record``, also write it as a record whose ``train_seconds`` is the
    sum over the models (each folder's results.json)."""
    import argparse
    import sys

    from embedkit.errors import EmbedkitError
    from embedkit.records import recording
    from embedkit.training.recipe import load_recipe

    parser = argparse.ArgumentParser(prog="python -m embedkit.training.moe",
                                     description="score N separately trained models, each on its own domain")
    parser.add_argument("recipe")
    parser.add_argument("models", nargs="+", metavar="DOMAIN=FOLDER")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, as for embedkit train (eval.final=true: the test sets too)")
    parser.add_argument("--record", default=None, metavar="PATH", help="also write the row as a record")
    args = parser.parse_args(argv)
    bad = [item for item in args.models if "=" not in item]
    if bad:
        parser.error(f"expected DOMAIN=FOLDER, got {bad[0]!r}")
    folders = dict(item.split("=", 1) for item in args.models)
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        if args.record is None:
            print(json.dumps(evaluate_separate(recipe, folders), indent=2))
            return 0
        with recording(args.record, "moe-separate", ["python", "-m", "embedkit.training.moe",
                                                            *(sys.argv[1:] if argv is None else argv)]) as rec:
            rec.metrics["after"] = evaluate_separate(recipe, folders)
            runs = {name: json.loads((Path(folder) / "results.json").read_text(encoding="utf-8"))
                    for name, folder in folders.items()}
            rec.metrics["train_seconds"] = round(sum(run["train_seconds"] for run in runs.values()), 1)
            rec.metrics["steps"] = {name: run["steps"] for name, run in runs.items()}
            rec.details = {"models": folders, "seed": recipe.seed, "recipe_yaml": recipe.to_yaml()}
        print(json.dumps(rec.metrics["after"], indent=2))
    except (EmbedkitError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def read_domain_data(recipe: Recipe, params: MoEParams) -> tuple[int, int]:
    """(training pairs, evaluation sets) of the active domains, read as the runner reads them: what
    ``embedkit train --check`` reports for this method, whose data is ``params.domains``, not ``data``."""
    domains = params.active()
    pairs = sum(len(domain_pairs(d)) for d in domains)
    return pairs, len(load_domain_evals(domains, seed=recipe.seed, final=recipe.eval.final))


def _register() -> None:
    from embedkit.training.runners import register_runner

    register_runner("moe", MoEParams, train_moe, read_data=read_domain_data, data_in_params=True)


_register()

if __name__ == "__main__":
    raise SystemExit(main())
