"""How much faster than sentence-transformers can any engine encode long texts on this CPU?

On texts near the model's token limit (SciFact abstracts: 238 of at most 256 tokens on average, 72% cut
at 256), there is almost no padding for bucketing to remove and tokenisation is a few percent of the
time: encoding is the transformer's matrix products. This benchmark bounds what an engine can gain
there. In one run, on the same texts and the same number of threads, it measures:

- sentence-transformers' ``encode`` throughput (the reference, median of ``--repeats`` runs), and the
  model FLOPs per second that it amounts to (FLOPs counted from each text's token count);
- the machine's matrix-product rates on the model's own linear-layer shapes (a batch of ``--batch``
  texts of 256 tokens): float32 ``torch.matmul``, and int8 as ONNX Runtime runs a dynamically
  quantised linear layer (activations quantised per call, ``MatMulInteger`` on uint8 x int8, rescaled
  to float: what the ``onnx-int8`` backend's graph does);

and prints two upper bounds on the speed-up over sentence-transformers: the linear layers alone at those
rates with everything else free, and every matrix product of the model (the attention products QK^T and
AV too, at the best rate measured) with everything else -- softmax, layer norm, GELU, pooling,
tokenisation -- free. A real engine is slower than either. Runs interleave
(ST, fp32 GEMMs, int8 GEMMs, ST, ...) and record other processes' load (benchlib).

Those rates are what the libraries reach. When a C compiler is found, the CPU's own arithmetic peaks are
measured too (``cpu_peak.c``, one copy per core at once), and the same bound is printed at each peak. For
every rate it also prints how much time per text the targets (1.3x in float32, 2.5x in int8) would leave
for everything other than the matrix products.

    python benchmarks/ceiling_bench.py --limit 512 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import describe_load, interleaved, machine, median  # noqa: E402
from encode_bench import scifact_documents  # noqa: E402


def linear_shapes(config) -> list[tuple[int, int]]:
    """(in, out) of each linear layer of one BERT layer: query, key, value, attention output, FFN in, out."""
    h, i = config.hidden_size, config.intermediate_size
    return [(h, h)] * 4 + [(h, i), (i, h)]


def model_flops(config, lengths: np.ndarray) -> tuple[float, float]:
    """(linear-layer FLOPs, attention FLOPs) to encode texts of these token counts (a multiply-add is 2)."""
    linear = sum(2 * k * n for k, n in linear_shapes(config)) * float(lengths.sum())
    attention = 2 * 2 * config.hidden_size * float((lengths.astype(np.float64) ** 2).sum())  # QK^T and AV
    return config.num_hidden_layers * linear, config.num_hidden_layers * attention


def best_seconds(fn, calls: int) -> float:
    fn()  # warm-up: first-call allocation and kernel selection
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fp32_rates(shapes, rows: int, calls: int) -> dict[str, float]:
    import torch

    rates = {}
    for k, n in sorted(set(shapes)):
        x, w = torch.randn(rows, k), torch.randn(k, n)
        with torch.inference_mode():
            rates[f"{k}x{n}"] = 2 * rows * k * n / best_seconds(lambda: torch.matmul(x, w), calls)
    return rates


def int8_session(k: int, n: int, threads: int):
    """ONNX Runtime session of one dynamically quantised linear layer: float (rows, k) -> float (rows, n)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "w")
    initializers = [weights, numpy_helper.from_array(np.array(0, dtype=np.int8), "w_zero"),
                    numpy_helper.from_array(np.array(0.01, dtype=np.float32), "w_scale")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "x_scale", "x_zero"]),
             helper.make_node("MatMulInteger", ["xq", "w", "x_zero", "w_zero"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x_scale", "w_scale"], ["scale"]),
             helper.make_node("Mul", ["acc_f", "scale"], ["y"])]
    graph = helper.make_graph(nodes, "int8_linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def int8_rates(shapes, rows: int, calls: int, threads: int) -> dict[str, float]:
    rates = {}
    for k, n in sorted(set(shapes)):
        session = int8_session(k, n, threads)
        x = np.random.default_rng(1).standard_normal((rows, k), dtype=np.float32)
        rates[f"{k}x{n}"] = 2 * rows * k * n / best_seconds(lambda: session.run(None, {"x": x}), calls)
    return rates


def linear_seconds(config, lengths: np.ndarray, rates: dict[str, float]) -> float:
    """Time of the linear layers alone for these texts at these rates (FLOP/s per shape)."""
    tokens = float(lengths.sum())
    return config.num_hidden_layers * sum(2 * k * n * tokens / rates[f"{k}x{n}"] for k, n in linear_shapes(config))


PEAK_LINES = {"fp32-fma": "float32 FMA", "int8-peak": "int8 (vpmaddubsw+vpmaddwd+vpaddd)",
              "int8-int16-sums-peak": "int8 (vpmaddubsw+vpaddsw, int16 sums)"}
TARGETS = {"fp32": 1.3, "int8": 2.5}  # the CPU targets on SciFact: default path, fast backend


def arithmetic_peaks(copies: int) -> dict[str, float] | None:
    """The CPU's peaks in GOP/s, summed over ``copies`` concurrent runs of cpu_peak.c (one per core);
    None without a C compiler or off x86-64 AVX2."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "cpu_peak"
        built = subprocess.run([compiler, "-O2", str(Path(__file__).with_name("cpu_peak.c")), "-o", str(binary)],
                               capture_output=True)
        if built.returncode:
            return None
        procs = [subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True) for _ in range(copies)]
        outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        return None  # e.g. a CPU without AVX2: the instructions are illegal there
    peaks = {}
    for name, label in PEAK_LINES.items():
        rates = [float(re.search(re.escape(label) + r": ([0-9.]+)", out).group(1)) for out in outputs]
        peaks[name] = sum(rates)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=512, help="the first N SciFact abstracts (0: all)")
    parser.add_argument("--batch", type=int, default=16, help="sentence-transformers' batch size; GEMM rows = batch x 256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5, help="GEMM calls per shape per repeat (best is kept)")
    parser.add_argument("--out", default="benchmarks/results/ceiling.jsonl")
    parser.add_argument("--record", default=None, help="also write the run as a record (results/encode/NAME.json)")
    args = parser.parse_args()
    started = time.perf_counter()

    import torch

    from embedkit.models import load_model
    from embedkit.paths import data_dir

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    model = load_model(args.model)
    texts = scifact_documents(data_dir())
    texts = texts[: args.limit] if args.limit else texts
    config = model[0].auto_model.config
    lengths = np.array([len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]])
    linear, attention = model_flops(config, lengths)
    shapes, rows = linear_shapes(config), args.batch * model.max_seq_length

    results: dict[str, list] = {}
    runs = interleaved({
        "sentence-transformers": lambda: model.encode(texts, batch_size=args.batch, show_progress_bar=False),
        "fp32-gemm": lambda: fp32_rates(shapes, rows, args.calls),
        "int8-gemm": lambda: int8_rates(shapes, rows, args.calls, threads),
    }, args.repeats, on_run=lambda run, result: results.setdefault(run.name, []).append(result))
    st_seconds = median([r.seconds for r in runs["sentence-transformers"]])
    best = {name: {shape: max(rates[shape] for rates in results[name]) for shape in results[name][0]}
            for name in ("fp32-gemm", "int8-gemm")}
    record = {
        "benchmark": "ceiling", "argv": sys.argv[1:], "machine": machine(), "threads": threads,
        "texts": len(texts), "mean_tokens": float(lengths.mean()), "share_at_limit": float((lengths == model.max_seq_length).mean()),
        "gflop_per_text": (linear + attention) / len(texts) / 1e9, "attention_share": attention / (linear + attention),
        "st_texts_per_s": len(texts) / st_seconds, "st_gflop_per_s": (linear + attention) / st_seconds / 1e9,
        "gemm_gflop_per_s": {name: {s: r / 1e9 for s, r in rates.items()} for name, rates in best.items()},
        "ceiling_vs_st": {name: st_seconds / linear_seconds(config, lengths, rates) for name, rates in best.items()},
        "ceiling_all_matmuls_vs_st": {
            name: st_seconds / (linear_seconds(config, lengths, rates) + attention / max(rates.values()))
            for name, rates in best.items()},
        "load": describe_load([r for rs in runs.values() for r in rs]),
    }
    peaks = arithmetic_peaks(threads)
    if peaks is not None:
        record["peak_gop_per_s"] = peaks
        record["ceiling_at_peak_vs_st"] = {name: st_seconds / ((linear + attention) / (rate * 1e9))
                                           for name, rate in peaks.items()}
    st_ms = 1000 * st_seconds / len(texts)
    bounds = {**record["ceiling_all_matmuls_vs_st"], **record.get("ceiling_at_peak_vs_st", {})}
    record["ms_left_at_target"] = {name: st_ms / TARGETS[name.split("-")[0]] - st_ms / bound for name, bound in bounds.items()}
    print(f"{len(texts)} SciFact abstracts, {record['mean_tokens']:.1f} tokens on average "
          f"({record['share_at_limit']:.0%} at the {model.max_seq_length}-token limit), "
          f"{record['gflop_per_text']:.2f} GFLOP each ({record['attention_share']:.0%} in attention), {threads} threads")
    print(f"sentence-transformers (batch {args.batch}, median of {args.repeats}): {record['st_texts_per_s']:.1f} texts/s "
          f"= {record['st_gflop_per_s']:.0f} GFLOP/s")
    for name, rates in record["gemm_gflop_per_s"].items():
        shown = ", ".join(f"{s}: {r:.0f}" for s, r in rates.items())
        print(f"{name} GFLOP/s on ({rows} x in) @ (in x out): {shown}; linear layers alone at these rates: "
              f"at most {record['ceiling_vs_st'][name]:.2f}x sentence-transformers; with the attention products too: "
              f"at most {record['ceiling_all_matmuls_vs_st'][name]:.2f}x")
    for name, rate in record.get("peak_gop_per_s", {}).items():
        print(f"{name}: {rate:.0f} GOP/s (cpu_peak.c, {threads} copies at once); every matrix product at this rate, "
              f"everything else free: at most {record['ceiling_at_peak_vs_st'][name]:.2f}x sentence-transformers")
    if "peak_gop_per_s" not in record:
        print("arithmetic peaks not measured (no C compiler, or cpu_peak.c did not build or run)")
    for name, left in record["ms_left_at_target"].items():
        target = TARGETS[name.split("-")[0]]
        print(f"{target}x with the matrix products at the {name} rate leaves {left:.1f} ms per text "
              f"({left / st_ms:.0%} of sentence-transformers' {st_ms:.1f} ms) for everything else")
    print(record["load"])
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if args.record:
        from embedkit.records import make_record, write_record

        write_record(args.record, make_record("encode-ceiling", record, ["benchmarks/ceiling_bench.py", *sys.argv[1:]],
                                              time.perf_counter() - started))

if __name__ == "__main__":
    main()
