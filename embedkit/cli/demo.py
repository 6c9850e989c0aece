"""``embedkit demo``: the README's main job (see embedkit/demo.py)."""
from __future__ import annotations

import argparse

from embedkit.cli.common import check_model_first, print_json_line, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="evaluate on STS-B and SciFact, index SciFact, run a sample query",
        description="Evaluate a model on STS-B test and SciFact test, build a SciFact index in "
                    "EMBEDKIT_CACHE/demo-index and search it with a sample query. Reads stsb/ and scifact/ under "
                    "EMBEDKIT_DATA (get them with `embedkit data get stsb scifact`). Embeddings are cached: "
                    "the first run encodes the 5,183 SciFact abstracts (minutes on a CPU), a second run takes seconds.")
    p.add_argument("--model", default="default",
                   help="'default' (packaged all-MiniLM-L6-v2), a local model folder, or a hub id")
    p.add_argument("--query", default=None, help="sample query to search SciFact with")
    p.add_argument("--spec", default="HNSW32", help="FAISS index spec for the SciFact index (default HNSW32)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda (default: best available)")
    p.set_defaults(func=run)
    check_model_first(p)


def run(args: argparse.Namespace) -> int:
    from embedkit.demo import SAMPLE_QUERY, run_demo

    r = run_demo(args.model, query=args.query or SAMPLE_QUERY, spec=args.spec, batch_size=args.batch_size,
                 device=args.device)
    s, ret = r["sts"], r["retrieval"]
    print(f"\nembedkit demo -- model {r['model']}\n")
    print_table([
        ("STS-B test", "Spearman x100", s["spearman"], "82.03"),
        ("STS-B test", "Pearson x100", s["pearson"], ""),
        ("SciFact test", "nDCG@10 x100", ret["ndcg@10"], "64.51"),
        ("SciFact test", "Recall@100 x100", ret["recall@100"], "92.50"),
        ("SciFact test", "MRR@10 x100", ret["mrr@10"], ""),
    ], ("task", "metric", "embedkit", "published"))
    print(f"\nIndex: {r['count']} SciFact abstracts, {r['spec']}, cosine -> {r['index_dir']}")
    print(f"Query: {r['query']}")
    for rank, hit in enumerate(r["hits"], 1):
        print(f"  {rank}. [{hit['score']:.3f}] {hit['id']}  {hit['title'][:90]}")
    t = r["seconds"]
    print(f"\nTime: STS {t['sts']:.1f}s, SciFact {t['retrieval']:.1f}s, index+query {t['index']:.1f}s, "
          f"total {t['total']:.1f}s")
    print_json_line({"spearman": s["spearman"], "ndcg@10": ret["ndcg@10"], "recall@100": ret["recall@100"],
                     "top_hit": r["hits"][0]["id"] if r["hits"] else None, "seconds": round(t["total"], 1)})
    return 0
