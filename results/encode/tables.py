"""Tables of the encode benchmark records (``benchmarks/encode_bench.py --record``): one table per CPU.

Records of one kind of CPU sit in a folder named by ``embedkit.machine.CpuInfo.kind`` (vendor, family and
model number, and best matrix-product instruction set, e.g. ``amd-f26m2-avx512_vnni/``): ``speed-stsb.json``,
``speed-scifact.json``, ``quality*.json`` and ``ceiling.json``, so runs on different kinds of CPU sit side by
side as tables ``encode-cpu-<kind>`` and ``encode-ceiling-<kind>``. Quality may come from several
runs: their rows are merged, each metric of a method from the first record (by name) that has it, and each
row's loss is taken against the sentence-transformers float32 row (every run scores the same model on the
same test sets). Each table has one row per method: its best batch size and throughput on each data set
(quiet runs only, see ``benchlib.quiet_seconds``), the ratio to sentence-transformers float32 and to the best
sentence-transformers row (any backend), the lowest cosine to sentence-transformers' embeddings, STS-B
test Spearman and SciFact test nDCG@10, and a flag for a loss over 0.5 points; below it, the load during
the runs and whether ``auto`` meets the issue's targets on this CPU.
"""
from __future__ import annotations

import sys
from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))
from benchlib import QUIET_OTHERS_CPU, median, quiet_seconds  # noqa: E402

ST = "sentence-transformers"
LABELS = {
    ST: "sentence-transformers, float32",
    "st-onnx-O1": "sentence-transformers `onnx` O1", "st-onnx-O2": "sentence-transformers `onnx` O2",
    "st-onnx-O3": "sentence-transformers `onnx` O3", "st-onnx-O4": "sentence-transformers `onnx` O4",
    "st-onnx-int8": "sentence-transformers ONNX int8 (this CPU's config)",
    "st-openvino": "sentence-transformers `openvino`, float32",
    "st-openvino-int8": "sentence-transformers `openvino` int8 (static)",
    "st-bf16": "sentence-transformers, model cast to bf16", "st-fp16": "sentence-transformers, model cast to fp16",
    "torch": "embedkit `torch` (exact)", "bf16": "embedkit `bf16`", "int8": "embedkit `int8` (torch)",
    "onnx": "embedkit `onnx`", "onnx-int8": "embedkit `onnx-int8`", "openvino": "embedkit `openvino`",
    "openvino-int8": "embedkit `openvino-int8`", "auto": "embedkit `auto`", "static": "static model (model2vec)",
}


def _cpu_name(cpu: dict) -> str:
    numbers = f" (family {cpu['family']}, model {cpu['model_number']})" if cpu.get("family") else ""
    return cpu["model"] + numbers


QUALITY_TOLERANCE = 0.5  # as encode_bench.py: points a row may lose before it is flagged
METRICS = ("stsb_test_spearman", "scifact_ndcg@10")


def _records(cpu_kind: str) -> dict:
    records = {kind: load_record(path) for kind in ("speed-stsb", "speed-scifact")
               if (path := HERE / cpu_kind / f"{kind}.json").exists()}
    quality = [load_record(path) for path in sorted((HERE / cpu_kind).glob("quality*.json"))]
    if quality:
        records["quality"] = quality
    return records


def _quality_rows(records: list[dict]) -> dict:
    """Quality per method over several quality records, each row flagged against sentence-transformers float32."""
    rows: dict = {}
    for record in records:
        for row in record["metrics"]["rows"]:
            merged = rows.setdefault(row["method"], dict(row))
            for metric in METRICS:  # a metric the first record lacks comes from a later one
                if metric in row:
                    merged.setdefault(metric, row[metric])
    reference = rows.get(ST, {})
    out = {}
    for method, row in rows.items():
        losses = [reference[m] - row[m] for m in METRICS if m in row and m in reference]
        # without the reference row nothing can be judged: None, not "not flagged"
        out[method] = {**row, "flagged": any(loss > QUALITY_TOLERANCE for loss in losses) if reference else None}
    return out


def _summaries(record: dict | None) -> dict:
    """Per method, from the record's timed runs: the median time of its quiet runs (benchlib.quiet_seconds) at
    its best batch size, and the ratios to sentence-transformers float32 and to the fastest sentence-transformers
    row; a ratio is left out (None) where either side had no quiet run, as load slows the engines unequally."""
    if record is None:
        return {}
    best: dict = {}
    cosines: dict = {}
    for row in record["metrics"]["rows"]:
        if row.get("summary"):
            continue
        seconds, quiet = quiet_seconds(row["seconds"], row["others_cpu"])
        rate = row["texts"] / median(seconds)
        summary = {"method": row["method"], "best_batch_size": row["batch_size"], "texts_per_s": rate,
                   "quiet": quiet, "quiet_runs": len(seconds) if quiet else 0, "runs": len(row["seconds"])}
        current = best.get(row["method"])
        if current is None or (quiet, rate) > (current["quiet"], current["texts_per_s"]):
            best[row["method"]] = summary
        if row.get("min_cosine_vs_st") is not None:
            cosines[row["method"]] = min(cosines.get(row["method"], 1.0), row["min_cosine_vs_st"])
    peers = [m for m, s in best.items() if (m == ST or m.startswith("st-")) and s["quiet"]]
    best_st = max(peers, key=lambda m: best[m]["texts_per_s"]) if peers else None
    st_quiet = best.get(ST, {}).get("quiet")
    for method, summary in best.items():
        summary["min_cos"] = cosines.get(method)
        summary["ratio_vs_st"] = summary["texts_per_s"] / best[ST]["texts_per_s"] if summary["quiet"] and st_quiet else None
        summary["ratio_vs_best_st"] = (summary["texts_per_s"] / best[best_st]["texts_per_s"]
                                       if summary["quiet"] and best_st else None)
        summary["best_st"] = best_st
        summary["unquiet_st"] = sorted(m for m, s in best.items() if (m == ST or m.startswith("st-")) and not s["quiet"])
    return best


def _speed_cells(summary: dict | None) -> list[str]:
    if summary is None:
        return ["–"] * 5
    rate = fmt(summary["texts_per_s"], 1) + ("" if summary["quiet"] else " (loaded)")
    return [str(summary["best_batch_size"]), rate, f"{summary['quiet_runs']}/{summary['runs']}",
            fmt(summary["ratio_vs_st"]) if summary["ratio_vs_st"] is not None else "–",
            fmt(summary["ratio_vs_best_st"]) if summary["ratio_vs_best_st"] is not None else "–"]


def _speed_records(records: dict) -> list[dict]:
    return [records[kind] for kind in ("speed-stsb", "speed-scifact") if kind in records]


def _auto_pick(speed_records: list[dict]) -> str | None:
    """The backend ``auto`` picked in these runs (recorded by encode_bench.py), or None."""
    return next((r["details"]["auto_backend"] for r in speed_records if r["details"].get("auto_backend")), None)


def cpu_table(cpu_kind: str) -> str:
    records = _records(cpu_kind)
    stsb, scifact = _summaries(records.get("speed-stsb")), _summaries(records.get("speed-scifact"))
    quality = _quality_rows(records.get("quality", []))
    methods = list(dict.fromkeys([*stsb, *scifact, *quality]))
    speed_records = _speed_records(records)
    cpu = (speed_records or records["quality"])[0]["cpu"]
    auto = _auto_pick(speed_records)
    picked = (f"`auto` picked `{auto}` here (its quality is that backend's row)" if auto
              else "no speed run yet, so `auto` not calibrated in one")
    if auto in quality and "auto" not in quality:  # auto runs exactly the backend it picked
        quality["auto"] = quality[auto]
    lines = [f"CPU: {_cpu_name(cpu)}, {cpu['cores']} cores, flags {', '.join(cpu['flags'])}; {picked}. Texts/s: "
             f"median of the method's quiet runs (other processes at most {fmt(QUIET_OTHERS_CPU)} cores; "
             "'(loaded)': none was quiet, median of all) at its best batch size; quiet: quiet runs / interleaved "
             "runs; x ST: over sentence-transformers float32; x best ST: over the fastest sentence-transformers "
             "row of any backend with a quiet run (– where a side had none); min cos: lowest cosine of any text to "
             "sentence-transformers float32 (– for the static model, another embedding space).", "",
             "| method | STS-B batch | STS-B texts/s | quiet | x ST | x best ST | SciFact batch | SciFact texts/s | "
             "quiet | x ST | x best ST | min cos | STS-B Spearman | SciFact nDCG@10 | loses > 0.5 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        q = quality.get(method, {})
        cos = [c for c in (stsb.get(method, {}).get("min_cos"), scifact.get(method, {}).get("min_cos")) if c is not None]
        flag = "–" if not q or q.get("flagged") is None else ("**yes**" if q["flagged"] else "no")
        lines.append("| " + " | ".join([LABELS.get(method, method), *_speed_cells(stsb.get(method)),
                                         *_speed_cells(scifact.get(method)), fmt(min(cos), 4) if cos else "–",
                                         fmt(q.get("stsb_test_spearman")), fmt(q.get("scifact_ndcg@10")), flag]) + " |")
    lines += ["", _load_line(records), "", _targets_line(cpu, stsb, scifact, quality)]
    return "\n".join(lines) + "\n"


def _load_line(records: dict) -> str:
    """What else ran: other processes' CPU during the timed runs of each speed record."""
    parts = []
    for kind, name in (("speed-stsb", "STS-B"), ("speed-scifact", "SciFact")):
        if kind not in records:
            continue
        others = sorted(o for row in records[kind]["metrics"]["rows"] for o in row.get("others_cpu", []))
        details = records[kind]["details"]
        texts = records[kind]["metrics"]["rows"][0]["texts"]
        which = f"first {details['limit']:,}" if details.get("limit") else f"all {texts:,}"
        parts.append(f"{name}: {which} texts, {details['repeats']} interleaved runs per method, "
                     f"other processes used {fmt(others[len(others) // 2])} cores (median of all timed runs; "
                     f"{fmt(others[0])}-{fmt(others[-1])})")
    return ("Load: " + "; ".join(parts) + ", on cores shared with other jobs: only the quiet runs count above, "
            "and a rate from one quiet run of a few seconds is a rough figure.") if parts else "Load: no speed run yet."


VNNI_OR_AMX = ("avx512_vnni", "avx_vnni", "amx")  # CpuInfo.kernels values with int8 dot-product instructions


def _targets_line(cpu: dict, stsb: dict, scifact: dict, quality: dict) -> str:
    """The issue's targets for ``auto`` on this CPU, computed from the rows: met or not, and by how much."""
    if "auto" not in stsb and "auto" not in scifact:
        return "Targets: `auto` has no speed row on this CPU yet."
    parts = []
    for name, summaries in (("STS-B", stsb), ("SciFact", scifact)):
        if "auto" in summaries:
            auto = summaries["auto"]
            ratio = auto["ratio_vs_best_st"]
            if ratio is None:
                parts.append(f"{name}: not established (no quiet run of `auto` or of any sentence-transformers row)")
                continue
            unquiet = (f"; not compared, no quiet run: {', '.join(LABELS.get(m, m) for m in auto['unquiet_st'])}"
                       if auto["unquiet_st"] else "")
            verdict = "**not met**" if ratio < 1.0 else ("met among the rows with a quiet run" if unquiet else "met")
            parts.append(f"{name} {fmt(ratio)}x (best: {LABELS.get(auto['best_st'], auto['best_st'])}{unquiet}): {verdict}")
    q = quality.get("auto")
    if q is None:
        parts.append("quality within 0.5 points: not measured")
    elif q["flagged"] is None:
        parts.append("quality within 0.5 points: not established (no sentence-transformers float32 quality row)")
    else:
        parts.append(f"quality within 0.5 points of sentence-transformers float32: {'**not met**' if q['flagged'] else 'met'}")
    text = "Targets on this CPU, `auto` at >= 1.0x the best sentence-transformers row: " + "; ".join(parts) + "."
    if "auto" in stsb and stsb["auto"]["ratio_vs_st"] is not None:
        ratio = stsb["auto"]["ratio_vs_st"]
        if cpu.get("kernels") in VNNI_OR_AMX:
            text += (f" `auto` at >= 2.5x sentence-transformers float32 on STS-B (this CPU has VNNI or AMX): "
                     f"{fmt(ratio)}x, {'met' if ratio >= 2.5 else '**not met**'}.")
        else:
            text += (f" The 2.5x-over-float32 target applies only to CPUs with VNNI or AMX; this one has neither "
                     f"(its best matrix-product kernels: {cpu.get('kernels')}), and `auto` reached {fmt(ratio)}x on STS-B.")
    return text


def _cpu_kinds_found() -> list[str]:
    """The CPU kinds with a speed or quality record (a folder with only a ceiling record has no table of its own)."""
    return sorted({p.parent.name for p in [*HERE.glob("*/speed-*.json"), *HERE.glob("*/quality*.json")]})


TABLES = {f"encode-cpu-{kind}": (lambda kind=kind: cpu_table(kind)) for kind in _cpu_kinds_found()}


def ceiling_table(cpu_kind: str) -> str:
    """The matrix-product bound on SciFact abstracts (``ceiling_bench.py --record``) on this kind of CPU."""
    record = load_record(HERE / cpu_kind / "ceiling.json")
    m, cpu = record["metrics"], record["cpu"]
    lines = [f"CPU: {_cpu_name(cpu)}, {cpu['cores']} cores, flags {', '.join(cpu['flags'])}; first {m['texts']} SciFact "
             f"abstracts, {fmt(m['mean_tokens'], 1)} tokens on average; sentence-transformers "
             f"{fmt(m['st_texts_per_s'], 1)} texts/s = {fmt(m['st_gflop_per_s'], 0)} GFLOP/s; {m['load']}.", "",
             "| matrix products at | rate (GOP/s) | bound on any engine's speed-up, everything else free |",
             "|---|---|---|"]
    for name, rates in m["gemm_gflop_per_s"].items():
        lines.append(f"| {name} (library, best shape) | {fmt(max(rates.values()), 0)} | "
                     f"{fmt(m['ceiling_all_matmuls_vs_st'][name])}x |")
    for name, rate in m.get("peak_gop_per_s", {}).items():
        lines.append(f"| {name} (CPU peak, cpu_peak.c) | {fmt(rate, 0)} | {fmt(m['ceiling_at_peak_vs_st'][name])}x |")
    return "\n".join(lines) + "\n"


TABLES.update({f"encode-ceiling-{p.parent.name}": (lambda kind=p.parent.name: ceiling_table(kind))
               for p in HERE.glob("*/ceiling.json")})


def summary_table() -> str:
    """One row per kind of CPU measured: what ``auto`` picked and its speed and quality against
    sentence-transformers float32 and the fastest sentence-transformers row (the README's speed table)."""
    lines = ["| CPU | `auto` picked | STS-B: x ST float32 | STS-B: x best ST row | SciFact: x ST float32 | "
             "SciFact: x best ST row | STS-B Spearman (ST float32) | SciFact nDCG@10 (ST float32) |",
             "|---|---|---|---|---|---|---|---|"]
    for cpu_kind in _cpu_kinds_found():
        records = _records(cpu_kind)
        speed = _speed_records(records)
        if not speed:
            continue
        cpu = speed[0]["cpu"]
        auto = _auto_pick(speed)
        quality = _quality_rows(records.get("quality", []))
        auto_quality, reference = quality.get(auto or "", {}), quality.get(ST, {})

        def ratios(kind: str) -> list[str]:
            summary = _summaries(records.get(kind)).get("auto")
            if summary is None:
                return ["–", "–"]
            best = LABELS.get(summary["best_st"], summary["best_st"]) if summary["best_st"] else None
            return [fmt(summary["ratio_vs_st"]) + "x" if summary["ratio_vs_st"] is not None else "–",
                    f"{fmt(summary['ratio_vs_best_st'])}x ({best})" if summary["ratio_vs_best_st"] is not None else "–"]

        def score(metric: str) -> str:
            if metric not in auto_quality or metric not in reference:
                return "–"
            return f"{fmt(auto_quality[metric])} ({fmt(reference[metric])})"

        lines.append(f"| {_cpu_name(cpu)}, {cpu['cores']} cores, {cpu['kernels']} | `{auto}` | "
                     + " | ".join([*ratios("speed-stsb"), *ratios("speed-scifact"),
                                   score("stsb_test_spearman"), score("scifact_ndcg@10")]) + " |")
    return "\n".join(lines) + "\n"


TABLES["encode-summary"] = summary_table
