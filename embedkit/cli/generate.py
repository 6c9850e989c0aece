"""``embedkit generate`` (sample from a causal LM, optionally reranked or beam-searched with RankGen) and
``embedkit rankgen negatives|suffix-id|compare`` (LM negatives cache, suffix identification with
several scorers, decoding comparison)."""
from __future__ import annotations

import argparse
import json
import sys


def _add_sampling_args(p: argparse.ArgumentParser, max_new_tokens: int = 48) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"tokens per continuation ({max_new_tokens})")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (0.9)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature: below 1 sharper, above 1 more varied (1.0)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed gives the same continuations (0)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample continuations of a prefix from a causal LM, optionally ranked by RankGen")
    p.add_argument("--lm", default="default",
                   help="'default' (packaged SmolLM2-135M-Instruct), a causal LM folder, a .gguf file, or a hub id")
    p.add_argument("--scorer", default=None, help="RankGen model folder ('default': untrained all-MiniLM-L6-v2 "
                                                  "with RankGen markers); without it: plain nucleus sampling")
    p.add_argument("--prefix", required=True, help="the text to continue ('-' reads standard input)")
    p.add_argument("--samples", type=int, default=8, help="continuations to sample (8)")
    p.add_argument("--beam", action="store_true", help="RankGen beam search instead of over-generate-and-rerank")
    p.add_argument("--beam-size", type=int, default=2,
                   help="--beam: hypotheses kept after each RankGen rescoring (2)")
    p.add_argument("--rescore-every", type=int, default=16, help="beam search: tokens between RankGen rescorings")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_sampling_args(p)
    p.set_defaults(func=run_generate)

    r = sub.add_parser("rankgen", help="RankGen data and measurements (LM negatives, suffix identification, decoding)")
    rs = r.add_subparsers(dest="rankgen_command", required=True, metavar="SUBCOMMAND")
    n = rs.add_parser("negatives", help="generate (or resume) the cached LM negatives of a rankgen recipe")
    n.add_argument("recipe", help="a recipe with method: rankgen, e.g. training/rankgen-scifact.yaml")
    n.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    n.set_defaults(func=run_negatives)

    s = rs.add_parser("suffix-id", help="suffix identification accuracy on a recipe's dev or held-out prefixes")
    s.add_argument("recipe")
    s.add_argument("--scorer", dest="scorers", action="append", default=None,
                   help="RankGen folder, an embedding model ('default': untrained all-MiniLM-L6-v2 with the markers), "
                        "or lm:NAME (the LM's own likelihood, e.g. lm:default); repeatable (default: default)")
    s.add_argument("--split", default="held-out", choices=["dev", "held-out"])
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=run_suffix_id)

    c = rs.add_parser("compare", help="nucleus sampling vs RankGen reranking (and beam search) on held-out prefixes")
    c.add_argument("recipe")
    c.add_argument("--lm", default="default")
    c.add_argument("--scorer", required=True, help="RankGen folder")
    c.add_argument("--prefixes", type=int, default=24, help="held-out prefixes to continue (24)")
    c.add_argument("--samples", type=int, default=8)
    c.add_argument("--beam", action="store_true", help="also RankGen beam search (--samples per beam)")
    c.add_argument("--beam-size", type=int, default=2)
    c.add_argument("--rescore-every", type=int, default=16, help="beam search: tokens between RankGen rescorings")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_sampling_args(c, max_new_tokens=64)
    c.set_defaults(func=run_compare)


def _sampling(args):
    from embedkit.generative.sampling import SamplingConfig

    return SamplingConfig(max_new_tokens=args.max_new_tokens, top_p=args.top_p, temperature=args.temperature)


def run_generate(args: argparse.Namespace) -> int:
    from embedkit.errors import ConfigError
    from embedkit.generative.beam import BeamConfig, rankgen_beam_search
    from embedkit.generative.lm import load_causal_lm
    from embedkit.generative.rankgen import load_scorer
    from embedkit.generative.rerank import over_generate_and_rerank

    prefix = sys.stdin.read() if args.prefix == "-" else args.prefix
    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    if args.beam and not args.scorer:
        raise ConfigError("--beam rescoring needs --scorer (a RankGen folder, or 'default')")
    lm = load_causal_lm(args.lm, device=args.device)
    scorer = load_scorer(args.scorer, device=args.device) if args.scorer else None
    if args.beam:
        beam = BeamConfig(beam_size=args.beam_size, samples_per_beam=args.samples, rescore_every=args.rescore_every)
        candidates = rankgen_beam_search(lm, scorer, prefix, beam, _sampling(args), seed=args.seed)
        method = "rankgen-beam"
    else:
        candidates = over_generate_and_rerank(lm, prefix, args.samples, _sampling(args), scorer, seed=args.seed)
        method = "rankgen-rerank" if scorer else "nucleus"
    if args.json:
        print(json.dumps({"lm": lm.name, "method": method, "prefix": prefix,
                          "candidates": [c.__dict__ for c in candidates]}, ensure_ascii=False, indent=2))
        return 0
    order = "best RankGen score first" if scorer else "in sampled order"
    print(f"# {lm.name}, {method}, {len(candidates)} continuation(s), {order}")
    for i, c in enumerate(candidates, 1):
        score = f"rankgen={c.rankgen_score:.3f} " if c.rankgen_score is not None else ""
        print(f"[{i}] {score}lm_logprob={c.lm_score:.3f}\n{prefix.rstrip()} >>> {c.text.strip()}\n")
    return 0


def _recipe(args):
    import embedkit.generative.rankgen_train as rt
    from embedkit.errors import ConfigError
    from embedkit.training import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.method != "rankgen":
        raise ConfigError(f"{args.recipe}: method is {recipe.method!r}; these commands read rankgen recipes")
    return recipe, rt.RankGenParams.model_validate(recipe.params)


def run_negatives(args: argparse.Namespace) -> int:
    import embedkit.generative.rankgen_train as rt

    recipe, params = _recipe(args)
    data = rt.load_data(recipe, params)
    counts = ", ".join(f"{split} {len(negs)}" for split, negs in data.lm_negatives.items())
    print(f"LM negatives cached for the prefixes of each split: {counts}")
    return 0


def run_suffix_id(args: argparse.Namespace) -> int:
    from embedkit.generative.rankgen_eval import suffix_id_report

    recipe, params = _recipe(args)
    report = suffix_id_report(recipe, params, args.scorers or ["default"], args.split)
    print(json.dumps({spec: {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
                      for spec, result in report.items()}, indent=2))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from embedkit.generative.beam import BeamConfig
    from embedkit.generative.rankgen_eval import decoding_report

    recipe, params = _recipe(args)
    beam = BeamConfig(beam_size=args.beam_size, samples_per_beam=args.samples, rescore_every=args.rescore_every)
    sampling = params.sampling.model_copy(update={"max_new_tokens": args.max_new_tokens, "top_p": args.top_p,
                                                  "temperature": args.temperature})
    report = decoding_report(recipe, params, args.scorer, args.lm, args.prefixes, args.samples,
                             beam if args.beam else None, args.seed, sampling=sampling, device=args.device)
    print(json.dumps(report, indent=2))
    return 0
