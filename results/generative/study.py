"""The RankGen and GRACE study behind docs/generative.md: each subcommand is one measured step that
writes one record under results/generative/ (see embedkit/records.py); tables.py turns them into the
document's tables. Run each under ``flock /work/cpu.lock`` on the shared machine.

    python results/generative/study.py costs                              # per-step costs, for the budget
    python results/generative/study.py rankgen-data                       # sentences + cached LM negatives
    python results/generative/study.py rankgen-train dev-lr5e-5 --set learning_rate=5.0e-5 --set max_steps=300
    python results/generative/study.py rankgen-train seed-1 --set seed=1  # the chosen recipe, one seed
    python results/generative/study.py rankgen-suffix-id --scorer default --scorer lm:default \\
        --scorer runs/generative/rankgen/seed-1 ...                      # held-out, once, all scorers
    python results/generative/study.py rankgen-suffix-id --scorer lm:default --part 1/2 \
        --record rankgen-suffix-id-held-out-lm-1                         # a slow scorer in slices
    python results/generative/study.py rankgen-decoding --scorer runs/generative/rankgen/seed-1
    python results/generative/study.py grace-train dev-lr1e-4 --set learning_rate=1.0e-4
    python results/generative/study.py grace-baselines --split test       # raw-text LM and untrained policy
    python results/generative/study.py grace-train seed-43 --from-dev --set seed=43 --test
    python results/generative/study.py grace-train seed-42 --from-dev --set seed=42 --test \\
        --continue-from dev-lr2e-4 --set 'eval.sets=[]'                 # the best dev run, on test only

Training runs go to runs/generative/<method>/<name> (checkpoints; a second call with the same name
resumes). Records: rankgen-data.json, costs/<CPU kind>.json, rankgen-runs/<name>.json, rankgen-suffix-id-held-out*.json
(merged per scorer by tables.py),
rankgen-decoding.json, grace-runs/<name>.json, grace-baselines-<split>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from embedkit.records import make_record, write_record

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
RUNS = ROOT / "runs" / "generative"
RANKGEN_RECIPE = ROOT / "training" / "rankgen-scifact.yaml"
GRACE_RECIPE = ROOT / "training" / "grace-pairs.yaml"
# The final report's sets: every STS-B test pair; every SciFact test query against the whole 5,183-abstract
# corpus (a GRACE encoder writes a rationale per abstract: about 20 minutes an encoder on an idle Zen 5,
# see costs/).
TEST_SETS = ["eval.test_sets=[{kind: sts, path: stsb, split: test}, {kind: beir, path: scifact, split: test}]",
             "eval.final=true"]


def _command() -> str:
    return "python results/generative/study.py " + " ".join(sys.argv[1:])


def _recipe(path: Path, overrides: list[str]):
    import embedkit.generative.grace_train  # noqa: F401  (registers the runners)
    import embedkit.generative.rankgen_train  # noqa: F401
    from embedkit.training import load_recipe
    from embedkit.training.runners import validate_params

    recipe = load_recipe(path, overrides)
    return recipe, validate_params(recipe)


def chosen_on_dev(method: str) -> list[str]:
    """The overrides of the best dev run (the rule is tables.best_dev_run's, so the tables name the same run)."""
    from tables import best_dev_run  # results/generative/tables.py, beside this script

    best = best_dev_run(method)
    if method == "rankgen":
        mix = best["recipe"]["params"]["negatives"]
        return [f"learning_rate={best['recipe']['learning_rate']}", f"params.negatives.in_document={mix['in_document']}",
                f"params.negatives.lm_generated={mix['lm_generated']}"]
    return [f"learning_rate={best['recipe']['learning_rate']}"]


def _train(method: str, recipe_path: Path, args) -> int:
    from embedkit.training import run_recipe
    from embedkit.training.checkpoints import last_complete_checkpoint

    chosen = chosen_on_dev(method) if args.from_dev else []
    overrides = chosen + list(args.overrides) + (TEST_SETS if getattr(args, "test", False) else [])
    recipe, _ = _recipe(recipe_path, overrides)
    out = RUNS / method / args.name
    if getattr(args, "continue_from", None):
        _copy_trained_run(method, args.continue_from, recipe, out)
    started = time.perf_counter()
    result = run_recipe(recipe, out, resume=last_complete_checkpoint(out) is not None)
    metrics = {"before": result.before, "after": result.after, "during": result.during, "steps": result.steps,
               "train_seconds": result.train_seconds, "resumed_from": result.resumed_from}
    write_record(HERE / f"{method}-runs" / f"{args.name}.json",
                 make_record(f"{method}-{args.name}", metrics, _command(), time.perf_counter() - started,
                             recipe=recipe.model_dump(mode="json"),
                             details={"chosen_on_dev": chosen, "continued_from": getattr(args, "continue_from", None)}))
    return 0


def _copy_trained_run(method: str, source: str, recipe, out: Path) -> None:
    """Start ``out`` from the checkpoints of the recorded run ``source``, trained with this very recipe but
    for its evaluation sets: the best dev run, at seed 42, is then the chosen recipe's seed-42 final and is
    scored on the test sets without being trained a second time (as RankGen's best dev run is)."""
    import shutil

    from embedkit.records import load_record
    from embedkit.training.checkpoints import last_complete_checkpoint

    trained = {k: v for k, v in load_record(HERE / f"{method}-runs" / f"{source}.json")["recipe"].items() if k != "eval"}
    wanted = {k: v for k, v in recipe.model_dump(mode="json").items() if k != "eval"}
    if trained != wanted:
        differ = sorted(k for k in trained.keys() | wanted.keys() if trained.get(k) != wanted.get(k))
        raise SystemExit(f"--continue-from {source}: its recipe differs from this one in {', '.join(differ)}")
    if last_complete_checkpoint(RUNS / method / source) is None:
        raise SystemExit(f"--continue-from {source}: {RUNS / method / source} holds no complete checkpoint")
    if not out.exists():
        shutil.copytree(RUNS / method / source, out)


def costs(args) -> int:
    """Seconds per unit of each step of the study at the recipes' settings, to plan the budget; one record
    per kind of CPU (costs/<kind>.json), since the kinds differ several-fold."""
    import random

    import torch

    from embedkit.generative.beam import BeamConfig, rankgen_beam_search
    from embedkit.generative.grace import create_grace_encoder
    from embedkit.generative.grace_train import held_out_reward, held_out_sample, load_pairs, policy_step
    from embedkit.generative.lm import load_causal_lm
    from embedkit.generative.lm_encoder import MeanPooledLMEncoder
    from embedkit.generative.lm_scorer import LMLikelihoodScorer
    from embedkit.generative.rankgen import load_scorer
    from embedkit.generative.rankgen_train import build_examples
    from embedkit.generative.sampling import sample_continuations
    from embedkit.machine import cpu_info

    started = time.perf_counter()
    metrics: dict = {}
    load_start = os.getloadavg()[0]  # other engineers' unlocked work shares the two cores

    def timed(name, unit_count, fn):
        t0 = time.perf_counter()
        out = fn()
        metrics[name] = round((time.perf_counter() - t0) / unit_count, 3)
        print(f"{name}: {metrics[name]} s", flush=True)
        return out

    recipe, params = _recipe(RANKGEN_RECIPE, args.overrides)
    examples = timed("rankgen_documents_s", 1, lambda: build_examples(recipe, params))
    train, dev = examples["train"], examples["dev"]
    lm = load_causal_lm(params.lm)
    sample_continuations(lm, [train[0].prefix], 1, params.sampling, seed=0)  # warm-up
    negs = timed("gen_negative_s_per_prefix_x2", 32, lambda: sample_continuations(
        lm, [e.prefix for e in train[:32]], 2, params.sampling, seed=0, batch_size=16))
    metrics["gen_negative_words"] = sum(len(t.split()) for row in negs for t in row) / (2 * 32)
    cands = [[e.suffix, *e.in_doc_negatives, *negs[i % 32], negs[(i + 1) % 32][0]] for i, e in enumerate(dev[:8])]
    timed("lm_likelihood_s_per_prefix_7", 8, lambda: LMLikelihoodScorer(lm, params.sampling.max_prefix_tokens)
          .score_candidate_lists([e.prefix for e in dev[:8]], cands))
    scorer = load_scorer(recipe.model)
    many = [[e.suffix, *e.in_doc_negatives, *negs[i % 32], negs[(i + 1) % 32][0]] for i, e in enumerate(dev[:200])]
    timed("rankgen_suffix_id_s_per_prefix_7", len(many), lambda: scorer.score_candidate_lists(
        [e.prefix for e in dev[:200]], many))
    timed("rerank_sample8_s_per_prefix", 4, lambda: sample_continuations(lm, [e.prefix for e in dev[:4]], 8,
                                                                         params.sampling, seed=0))
    timed("beam_2x4_every16_s_per_prefix", 2, lambda: [rankgen_beam_search(lm, scorer, e.prefix, BeamConfig(), params.sampling,
                                                                            seed=0) for e in dev[:2]])
    # one RankGen optimisation step (the loss's forward and backward, and the optimiser)
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import dot_score

    model = scorer.model
    model.max_seq_length = recipe.max_seq_length or model.max_seq_length
    loss = MultipleNegativesRankingLoss(model, scale=params.scale, similarity_fct=dot_score)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate)
    for batch in (16, 32):
        def step():
            rows = random.Random(0).sample(train, batch)
            columns = [[("pre " + e.prefix)] for e in rows]
            features = [model.tokenize([c[0] for c in columns])]
            features += [model.tokenize(["suffi " + (e.suffix if k == 0 else e.in_doc_negatives[k - 1]) for e in rows])
                         for k in range(4)]
            value = loss(features, None)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        model.train()
        step()
        timed(f"rankgen_step_s_batch{batch}_5_texts_per_row", 3, lambda: [step() for _ in range(3)])
    del lm, scorer, model

    grecipe, gparams = _recipe(GRACE_RECIPE, [])
    sources = load_pairs(grecipe, gparams)
    encoder = create_grace_encoder(gparams.settings(grecipe.model))
    goptimizer = torch.optim.AdamW([p for p in encoder.lm.model.parameters() if p.requires_grad], lr=1e-4)
    rng = random.Random(0)
    policy_step(encoder, goptimizer, rng.sample(sources[1], grecipe.batch_size), gparams)
    for name, pairs in (("sts", sources[1]), ("scifact", sources[0])):
        timed(f"grace_policy_step_s_{name}", 2, lambda: [policy_step(encoder, goptimizer, rng.sample(pairs, grecipe.batch_size),
                                                                     gparams) for _ in range(2)])
    held = held_out_sample(gparams)
    timed("grace_held_out_reward_s", 1, lambda: held_out_reward(encoder, held, grecipe.batch_size, gparams))
    from embedkit import data as ekdata
    from embedkit.training.datasets import document_text

    corpus = list(ekdata.load_beir(resolve("scifact"), split="test").corpus.values())[:48]
    texts = [document_text(d) for d in corpus]
    sts = [p.sentence1 for p in ekdata.load_sts(resolve("stsb"), split="test").pairs[:64]]
    timed("grace_encode_s_per_scifact_doc", len(texts), lambda: encoder.encode(texts, batch_size=16))
    timed("grace_encode_s_per_sts_sentence", len(sts), lambda: encoder.encode(sts, batch_size=16))
    raw = MeanPooledLMEncoder(encoder.lm, gparams.max_input_tokens)
    timed("raw_lm_encode_s_per_scifact_doc", len(texts), lambda: raw.encode(texts, batch_size=16))
    metrics["torch_threads"] = torch.get_num_threads()
    metrics["load_average_1min_at_start"], metrics["load_average_1min_at_end"] = load_start, os.getloadavg()[0]
    write_record(HERE / "costs" / f"{cpu_info().kind}.json",
                 make_record("generative-costs", metrics, _command(), time.perf_counter() - started))
    return 0


def resolve(path: str):
    from embedkit.paths import resolve_data_path

    return resolve_data_path(path)


def rankgen_data(args) -> int:
    """Cut the documents and generate (or finish) every split's LM negatives; counts and timing."""
    import numpy as np

    from embedkit.generative.rankgen_train import eval_sets, load_data

    recipe, params = _recipe(RANKGEN_RECIPE, args.overrides)
    started = time.perf_counter()
    data = load_data(recipe, params)
    metrics = {}
    for split, examples in data.examples.items():
        negs = [n for e in examples for n in data.lm_negatives[split].get(e.id, [])]
        metrics[split] = {"documents": len({e.doc_id for e in examples}), "prefixes": len(examples),
                          "lm_negatives": len(negs), "empty_lm_negatives": sum(not n.strip() for n in negs),
                          "lm_negative_words": float(np.mean([len(n.split()) for n in negs])) if negs else None,
                          "true_continuation_words": float(np.mean([len(e.suffix.split()) for e in examples]))}
        if split != "train":
            metrics[split]["candidate_sets"] = len(eval_sets(data, params, split))
    write_record(HERE / "rankgen-data.json", make_record("rankgen-data", metrics, _command(),
                                                         time.perf_counter() - started,
                                                         recipe=recipe.model_dump(mode="json")))
    return 0


def rankgen_suffix_id(args) -> int:
    from embedkit.generative.rankgen_eval import suffix_id_report

    recipe, params = _recipe(RANKGEN_RECIPE, args.overrides)
    started = time.perf_counter()
    part = tuple(int(x) for x in args.part.split("/"))
    report = suffix_id_report(recipe, params, args.scorers, args.split, per_prefix=True, part=part)
    metrics = {spec: {k: v for k, v in r.items() if not k.startswith("hits_")} for spec, r in report.items()}
    hits = {spec: {k: v for k, v in r.items() if k.startswith("hits_")} for spec, r in report.items()}
    write_record(HERE / f"{args.record or 'rankgen-suffix-id-' + args.split}.json",
                 make_record("rankgen-suffix-id", metrics, _command(), time.perf_counter() - started,
                             recipe=recipe.model_dump(mode="json"),
                             details={"split": args.split, "part": list(part), "per_prefix": hits}))
    return 0


def rankgen_decoding(args) -> int:
    from embedkit.generative.beam import BeamConfig
    from embedkit.generative.rankgen_eval import decoding_report

    recipe, params = _recipe(RANKGEN_RECIPE, args.overrides)
    started = time.perf_counter()
    beam = BeamConfig(beam_size=args.beam_size, samples_per_beam=args.samples_per_beam, rescore_every=args.rescore_every)
    report = decoding_report(recipe, params, args.scorer, "default", args.prefixes, args.samples, beam, args.seed)
    examples = report.pop("examples")
    write_record(HERE / "rankgen-decoding.json",
                 make_record("rankgen-decoding", report, _command(), time.perf_counter() - started,
                             recipe=recipe.model_dump(mode="json"), details={"examples": examples}))
    return 0


def grace_baselines(args) -> int:
    """The two baselines with the same LM: mean-pooled raw text, and the untrained policy's rationales."""
    from embedkit.generative.grace import create_grace_encoder
    from embedkit.generative.grace_train import eval_sets_for
    from embedkit.generative.lm_encoder import load_mean_pooled_lm
    from embedkit.training.evaluation import evaluate_sets

    overrides = list(args.overrides) + (["eval.sets=[]", *TEST_SETS] if args.split == "test" else [])
    recipe, params = _recipe(GRACE_RECIPE, overrides)
    sets = eval_sets_for(recipe, params)
    started = time.perf_counter()
    metrics = {"raw_text_mean_pooled": evaluate_sets(load_mean_pooled_lm(recipe.model, params.max_input_tokens), sets,
                                                     recipe.eval.batch_size),
               "untrained_policy": evaluate_sets(create_grace_encoder(params.settings(recipe.model)), sets,
                                                 recipe.eval.batch_size)}
    write_record(HERE / f"grace-baselines-{args.split}.json",
                 make_record("grace-baselines", metrics, _command(), time.perf_counter() - started,
                             recipe=recipe.model_dump(mode="json")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, **kwargs):
        p = sub.add_parser(name, **kwargs)
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="recipe override, as for embedkit train")
        p.set_defaults(func=func)
        return p

    command("costs", costs)
    command("rankgen-data", rankgen_data)
    p = command("rankgen-train", lambda a: _train("rankgen", RANKGEN_RECIPE, a))
    p.add_argument("name")
    p.add_argument("--from-dev", action="store_true", help="learning rate and negatives mix of the best dev run")
    p = command("rankgen-suffix-id", rankgen_suffix_id)
    p.add_argument("--scorer", dest="scorers", action="append", required=True)
    p.add_argument("--split", default="held-out", choices=["dev", "held-out"])
    p.add_argument("--part", default="1/1", metavar="K/N", help="only the K-th of N slices of the prefixes")
    p.add_argument("--record", help="record name (default rankgen-suffix-id-SPLIT); tables merge the held-out ones")
    p = command("rankgen-decoding", rankgen_decoding)
    p.add_argument("--scorer", required=True)
    p.add_argument("--prefixes", type=int, default=100)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--beam-size", type=int, default=2)
    p.add_argument("--samples-per-beam", type=int, default=4)
    p.add_argument("--rescore-every", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p = command("grace-train", lambda a: _train("grace", GRACE_RECIPE, a))
    p.add_argument("name")
    p.add_argument("--from-dev", action="store_true", help="learning rate of the best dev run")
    p.add_argument("--test", action="store_true", help="evaluate on the test sets (the final runs only)")
    p.add_argument("--continue-from", metavar="RUN", help="start from the recorded run RUN's checkpoints (same recipe "
                   "but for evaluation): the best dev run becomes the seed-42 final without training again")
    p = command("grace-baselines", grace_baselines)
    p.add_argument("--split", default="dev", choices=["dev", "test"])
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
