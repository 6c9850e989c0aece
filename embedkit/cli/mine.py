"""``embedkit mine``: hard negatives for a BEIR split, as (query, positive, negatives) JSON lines."""
from __future__ import annotations

import argparse

from embedkit.cli.common import DATA_PATHS, add_model_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine", help="mine hard negatives for a BEIR split with the FAISS index layer")
    add_model_args(p)
    p.add_argument("--data", required=True, help=f"BEIR folder (corpus.jsonl, queries.jsonl, qrels/); {DATA_PATHS}")
    p.add_argument("--split", default="train", help="qrels split whose queries get negatives (default train)")
    p.add_argument("--out", required=True, help="output .jsonl: query, positive, negatives (+ their ids) per row")
    p.add_argument("--range", default="10:60", dest="window",
                   help="rank window START:END to draw negatives from, among documents not labelled relevant "
                        "(0-based, END exclusive; default 10:60)")
    p.add_argument("--num-negatives", type=int, default=1, help="negatives per row (default 1)")
    p.add_argument("--sampling", choices=["random", "top"], default="random",
                   help="random: draw from the whole window (seeded); top: the window's first documents")
    p.add_argument("--seed", type=int, default=0, help="seed of --sampling random (default 0)")
    p.add_argument("--index", default="Flat", help="FAISS index_factory spec to search (default Flat: exact)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.data import load_beir
    from embedkit.errors import ConfigError
    from embedkit.models import load_model
    from embedkit.training.mining import mine_hard_negatives, write_mined
    from embedkit.training.recipe import parse_range

    try:
        window = parse_range(args.window)
    except ValueError as exc:
        raise ConfigError(f"--range: {exc}") from None
    if args.num_negatives < 1:
        raise ConfigError(f"--num-negatives must be at least 1, got {args.num_negatives}")
    dataset = load_beir(args.data, split=args.split)  # bad data fails before the model loads
    model = load_model(args.model, device=args.device, max_seq_length=args.max_seq_length, dim=args.dim)
    examples = mine_hard_negatives(model, dataset, window=window, num_negatives=args.num_negatives,
                                   sampling=args.sampling, seed=args.seed, batch_size=args.batch_size,
                                   index_spec=args.index, query_prompt=args.query_prompt,
                                   document_prompt=args.document_prompt)
    write_mined(examples, args.out)
    queries = len({e.query_id for e in examples})
    print(f"wrote {len(examples)} rows ({queries} queries) to {args.out}")
    return 0
