"""Tables (and the plot) of the quantization area, generated from the records in this folder (see results/tables.py).

    python results/quantization/tables.py --plot docs/quantization.png   # the plot of docs/quantization.md
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from embedkit.records import fmt, fmt_seeds as _seeds, load_record, load_records

HERE = Path(__file__).resolve().parent
MATRYOSHKA = HERE / "matryoshka"  # quality records of trained models: dev-<run>.json (choices), test-<run>-s<seed>.json
KINDS = ["float32", "int8", "binary", "binary+rescore", "binary+rescore-int8"]


def _preferred(*names: str) -> dict:
    """The first record that exists: the full-size run before the cheaper one made to fit a busy machine."""
    for name in names:
        if (HERE / name).exists():
            return {**load_record(HERE / name), "path": str(HERE / name)}
    return load_record(HERE / names[0])  # raises, naming the record that should be there


def _dims_record() -> dict:
    return _preferred("scifact-dims.json", "scifact-dims-msl64.json")


def _rows() -> list[dict]:
    return _dims_record()["metrics"]["rows"]


def scifact() -> str:
    rows = _rows()
    base = next(r for r in rows if r["dim"] == max(x["dim"] for x in rows) and r["kind"] == "float32")
    dims = sorted({r["dim"] for r in rows}, reverse=True)
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    lines = ["| dims | " + " | ".join(f"{k}: nDCG@10 (% of {base['dim']}-d float32), bytes" for k in kinds)
             + " | STS-B test Spearman |", "|---" * (len(kinds) + 2) + "|"]
    for dim in dims:
        cells = []
        for kind in kinds:
            r = next((x for x in rows if x["dim"] == dim and x["kind"] == kind), None)
            cells.append("–" if r is None else f"{fmt(r['ndcg_at_10'])} ({fmt(100 * r['ndcg_at_10'] / base['ndcg_at_10'], 1)}%), "
                                              f"{r['memory']['codes']} B")
        spearman = next(x["stsb_test_spearman"] for x in rows if x["dim"] == dim)
        lines.append(f"| {dim} | " + " | ".join(cells) + f" | {fmt(spearman)} |")
    record = _dims_record()
    name = Path(record["path"]).name
    lines += ["", f"Default model (all-MiniLM-L6-v2), not fine-tuned, documents cut at "
              f"{record['details']['max_seq_length']} tokens; x100; bytes = the codes held in memory per "
              f"vector (+rescore: plus {base['dim'] * 4} B (float32) or {base['dim']} B (int8) per vector on disk "
              f"at {base['dim']} dims, memory-mapped); rescore factor {record['details']['rescore_factor']}. "
              f"CPU: {record['cpu']['model']}. Record: [{name}](../results/quantization/{name})."]
    return "\n".join(lines)


def _speed_record() -> dict:
    return _preferred("speed-100000.json", "speed-103660.json")


def speed() -> str:
    record = _speed_record()
    d = record["details"]
    lines = ["| spec | bytes/vector in memory | recall@10 | embedkit batch q/s | raw FAISS batch q/s | "
             "embedkit one-query q/s | raw FAISS one-query q/s |", "|---|---|---|---|---|---|---|"]
    for r in record["metrics"]["rows"]:
        lines.append(f"| `{r['spec']}` | {r['memory']['codes']} (+{r['memory']['rescore_on_disk']} on disk) | "
                     f"{fmt(r['recall_at_10'], 3)} | {fmt(r['embedkit_batch_qps'], 0)} | "
                     f"{fmt(r.get('faiss_batch_qps'), 0)} | {fmt(r['embedkit_single_qps'], 0)} | "
                     f"{fmt(r.get('faiss_single_qps'), 0)} |")
    name = Path(record["path"]).name
    lines += ["", f"{d['data']}; {d['dim']} dims, {d['queries']:,} queries in one call (batch) and "
              f"{d['single_queries']} one at a time, k={d['k']}, rescore factor {d['rescore_factor']}, one FAISS "
              f"thread, median of {d['repeats']} interleaved runs; recall@10 against exact search. Raw FAISS: "
              "`IndexFlatIP`, `IndexScalarQuantizer` (QT_8bit), `IndexBinaryFlat` over `np.packbits`, and for "
              "rescoring the binary top 40 rescored in numpy from an `np.load` memory map. "
              f"CPU: {record['cpu']['model']}; {d['load']}. Record: [{name}](../results/quantization/{name})."]
    return "\n".join(lines)


def plot(path: str) -> None:
    """nDCG@10 against bytes per vector, one line per kind, from the SciFact record; the Matryoshka model's
    float32 and binary + rescore lines (mean over its seeds) beside them when its test records exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in KINDS:
        points = sorted((r["memory"]["codes"], r["ndcg_at_10"], r["dim"]) for r in rows if r["kind"] == kind)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"base {kind}")
            for x, y, dim in points:
                ax.annotate(str(dim), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    seeds = _test_seeds()
    for kind in ("float32", "binary+rescore") if seeds else ():
        points = sorted((r["memory"]["codes"], r["dim"]) for r in rows if r["kind"] == kind)
        means = [statistics.mean(_ndcg(seed, dim, kind) for seed in seeds) for _, dim in points]
        ax.plot([p[0] for p in points], means, marker="s", linestyle="--",
                label=f"Matryoshka {kind} (mean of {len(seeds)} seeds)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector held in memory (log scale); labels: dimensions kept")
    ax.set_ylabel("SciFact test nDCG@10 x100")
    ax.set_title(f"SciFact test (documents cut at {_dims_record()['details']['max_seq_length']} tokens): "
                 "all-MiniLM-L6-v2 and the Matryoshka model", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------------ Matryoshka


def _ndcg(record: dict, dim: int, kind: str = "float32") -> float | None:
    return next((r["ndcg_at_10"] for r in record["metrics"]["rows"] if r["dim"] == dim and r["kind"] == kind), None)


def _spearman(record: dict, dim: int) -> float | None:
    split = record["details"].get("split", "test")
    return next((r[f"stsb_{split}_spearman"] for r in record["metrics"]["rows"] if r["dim"] == dim), None)


def _share(record: dict, dim: int, of: int = 384) -> float | None:
    low, full = _ndcg(record, dim), _ndcg(record, of)
    return None if low is None or full is None else 100 * low / full


def matryoshka_dev() -> str:
    """The dev screen: each run's model (seed 42, trained on train-fit) and the base model on the dev sets."""
    lines = ["| model | SciFact dev nDCG@10 at 384 / 256 / 128 / 64 dims | 128 dims as % of 384 | "
             "STS-B dev Spearman at 384 / 128 dims |", "|---|---|---|---|"]
    for record in load_records(MATRYOSHKA, "dev-*.json"):
        name = Path(record["path"]).stem.removeprefix("dev-")
        scores = " / ".join(fmt(_ndcg(record, d)) for d in (384, 256, 128, 64))
        lines.append(f"| {name} | {scores} | {fmt(_share(record, 128), 1)}% | "
                     f"{fmt(_spearman(record, 384))} / {fmt(_spearman(record, 128))} |")
    further = load_records(MATRYOSHKA, "seeddev-*.json")  # the chosen variant's other seeds, after the choice
    if further:
        variant = Path(further[0]["path"]).stem.removeprefix("seeddev-").rsplit("-s", 1)[0]
        runs = load_records(MATRYOSHKA, f"dev-{variant}-s*.json") + further
        shares = [_share(r, 128) for r in runs]
        lines.append(f"| {variant}, {len(runs)} seeds: mean (min-max) | "
                     + " / ".join(_seeds([_ndcg(r, d) for r in runs]) for d in (384, 256, 128, 64))
                     + f" | {fmt(min(shares), 1)}-{fmt(max(shares), 1)}% | "
                     f"{_seeds([_spearman(r, 384) for r in runs])} / {_seeds([_spearman(r, 128) for r in runs])} |")
    lines += ["", "float32 vectors cut to each width and renormalised; x100. Records: "
              "results/quantization/matryoshka/dev-*.json and, for the chosen variant's further seeds (scored "
              "after the choice), seeddev-*.json (`quantization_bench.py quality --split dev`)."]
    return "\n".join(lines)


def _test_seeds() -> list[dict]:
    return load_records(MATRYOSHKA, "test-*-s*.json")


def matryoshka_test() -> str:
    """The final recipe over seeds beside the base model, on the test sets, every width and precision."""
    seeds, base = _test_seeds(), _dims_record()
    if not seeds:
        raise FileNotFoundError(f"no test-*-s*.json records in {MATRYOSHKA}")
    kinds = KINDS[:4]  # int8 rescoring matches float32 rescoring (table above): left out here
    lines = ["| dims | model | " + " | ".join(f"{k} nDCG@10" for k in kinds) + " | bytes in memory "
             "(" + " / ".join(kinds) + ") | STS-B test Spearman |", "|---" * (len(kinds) + 4) + "|"]
    for dim in (384, 256, 128, 64):
        sizes = " / ".join(str(next(r["memory"]["codes"] for r in base["metrics"]["rows"]
                                    if r["dim"] == dim and r["kind"] == k)) for k in kinds)
        lines.append(f"| {dim} | base | " + " | ".join(fmt(_ndcg(base, dim, k)) for k in kinds)
                     + f" | {sizes} | {fmt(_spearman(base, dim))} |")
        lines.append(f"| {dim} | Matryoshka ({len(seeds)} seeds) | "
                     + " | ".join(_seeds([_ndcg(r, dim, k) for r in seeds]) for k in kinds)
                     + f" | {sizes} | {_seeds([_spearman(r, dim) for r in seeds])} |")
    names = ", ".join(Path(r["path"]).name for r in seeds)
    lines += ["", f"SciFact test (300 queries, 5,183 documents at 256 tokens) and STS-B test; x100; Matryoshka cells "
              f"are mean (min-max) over seeds. Base: all-MiniLM-L6-v2 ({Path(base['path']).name}). Matryoshka: "
              f"results/quantization/matryoshka/ {names}. CPU: {seeds[0]['cpu']['model']}."]
    return "\n".join(lines)


def matryoshka_targets() -> str:
    """The issue's two targets at 128 dims, per seed and on the mean."""
    seeds, base = _test_seeds(), _dims_record()
    if not seeds:
        raise FileNotFoundError(f"no test-*-s*.json records in {MATRYOSHKA}")
    base_128 = _ndcg(base, 128)
    lines = ["| run | nDCG@10 at 384 | at 128 | 128 as % of 384 (target >= 97%) | 128 minus base at 128 "
             f"({fmt(base_128)}) |", "|---|---|---|---|---|"]
    for record in seeds:
        name = Path(record["path"]).stem.removeprefix("test-")
        lines.append(f"| {name} | {fmt(_ndcg(record, 384))} | {fmt(_ndcg(record, 128))} | "
                     f"{fmt(_share(record, 128), 1)}% | {fmt(_ndcg(record, 128) - base_128)} |")
    low = [_ndcg(r, 128) for r in seeds]
    lines.append(f"| mean (min-max) | {_seeds([_ndcg(r, 384) for r in seeds])} | {_seeds(low)} | "
                 f"{fmt(statistics.mean(_share(r, 128) for r in seeds), 1)}% | "
                 f"{fmt(statistics.mean(low) - base_128)} (spread over seeds {fmt(max(low) - min(low))}) |")
    return "\n".join(lines)


TABLES = {"quantization-scifact": scifact, "quantization-speed": speed, "quantization-matryoshka-dev": matryoshka_dev,
          "quantization-matryoshka": matryoshka_test, "quantization-matryoshka-targets": matryoshka_targets}

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--plot":
        plot(sys.argv[2])
    else:
        sys.exit("usage: python results/quantization/tables.py --plot OUT.png")
