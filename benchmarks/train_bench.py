"""Training throughput and memory: embedkit's InfoNCE against sentence-transformers' MNRL in a plain loop.

Speed (default): seconds per optimiser step on SciFact (query, relevant abstract) pairs from the train
qrels, at each ``--batch-sizes``; ``embedkit.losses.InfoNCELoss`` (temperature 0.05, i.e. scale 20) and
``sentence_transformers.losses.MultipleNegativesRankingLoss`` (scale 20, cosine) each train their own
copy of the same model with AdamW, steps interleaved (A B A B ...), the first ``--warmup`` steps of
each dropped, medians quoted, ratio embedkit / ST printed (target <= 1.05). Both losses compute the
same quantity, so the ratio measures overhead only.

Memory (``--memory``): peak resident memory of one training step, each configuration in its own
fresh process: ``CachedInfoNCELoss`` at batch ``--cached-batch`` (mini-batch ``--mini-batch``)
against ``InfoNCELoss`` at batch ``--mini-batch``; the ratio of the peaks is printed (target <= 1.3),
and so is the ratio of the increments over the process's memory before the step. On CUDA the peak is
``torch.cuda.max_memory_allocated``.

Heap (``--heap``): what :func:`embedkit.heap.reuse_freed_memory` (on around every ``embedkit train``
run) saves. Fresh processes, alternately with and without it (A B A B ...), each train ``--steps``
InfoNCE steps after ``--warmup`` untimed ones at the first of ``--batch-sizes``; medians of seconds,
system seconds and minor page faults per step, and each process's peak resident memory.

    python benchmarks/train_bench.py --batch-sizes 32,128 --steps 6 --max-seq-length 128
    python benchmarks/train_bench.py --memory --cached-batch 1024 --mini-batch 64
    python benchmarks/train_bench.py --heap --batch-sizes 32 --max-seq-length 256 --steps 3 --repeats 2
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import describe_load, machine, median, timed  # noqa: E402


def scifact_pairs(seed: int = 0) -> list[tuple[str, str]]:
    from embedkit.data import load_beir
    from embedkit.paths import data_dir
    from embedkit.training.datasets import document_text

    data = load_beir(data_dir() / "scifact", split="train")
    pairs = [(data.queries[q], document_text(data.corpus[d]))
             for q, docs in data.qrels.items() for d, score in docs.items() if score > 0 and d in data.corpus]
    random.Random(seed).shuffle(pairs)
    return pairs


def batches(pairs, batch_size: int):
    while True:
        for start in range(0, len(pairs) - batch_size + 1, batch_size):
            chunk = pairs[start:start + batch_size]
            yield [a for a, _ in chunk], [p for _, p in chunk]


def make_loss(name: str, model, mini_batch: int = 32):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from embedkit.losses import CachedInfoNCELoss, InfoNCELoss

    if name == "st-mnrl":
        return MultipleNegativesRankingLoss(model, scale=20.0)
    if name == "infonce":
        return InfoNCELoss(model, temperature=0.05)
    if name == "cached-infonce":
        return CachedInfoNCELoss(model, mini_batch_size=mini_batch, temperature=0.05)
    raise ValueError(name)


def step(model, loss, optimizer, anchors, positives, device) -> float:
    from sentence_transformers.util import batch_to_device

    features = [batch_to_device(model.preprocess(column), device) for column in (anchors, positives)]
    value = loss(features, None)
    value.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(value.detach())


def load(args):
    from embedkit.models import load_model

    model = load_model(args.model, device=args.device)
    if args.max_seq_length:
        model.max_seq_length = args.max_seq_length
    model.train()
    return model


def speed(args) -> list[dict]:
    import torch

    base = load(args)
    device = base.device
    pairs = scifact_pairs()
    records = []
    for batch_size in args.batch_sizes:
        setups = {}
        for name in ("st-mnrl", "infonce"):
            model = copy.deepcopy(base)  # same start weights, own optimiser state
            setups[name] = (model, make_loss(name, model), torch.optim.AdamW(model.parameters(), lr=2e-5))
        feed = batches(pairs, batch_size)
        runs = {name: [] for name in setups}
        for i in range(args.warmup + args.steps):
            anchors, positives = next(feed)
            for name, (model, loss, optimizer) in setups.items():  # both losses see the same batch
                run, value = timed(name, lambda: step(model, loss, optimizer, anchors, positives, device))
                if i >= args.warmup:
                    runs[name].append(run)
                print(f"  batch {batch_size} step {i} {name:8s} {run.seconds:7.2f}s loss {value:.4f} "
                      f"others {run.others_cpu:.2f} cores", flush=True)
        st, ek = (median([r.seconds for r in runs[n]]) for n in ("st-mnrl", "infonce"))
        print(f"==> batch {batch_size}: InfoNCELoss {ek:.3f} s/step, MultipleNegativesRankingLoss {st:.3f} s/step, "
              f"ratio {ek / st:.3f} (target <= 1.05); {describe_load(runs['st-mnrl'] + runs['infonce'])}", flush=True)
        records.append({"batch_size": batch_size, "infonce_s_per_step": ek, "st_mnrl_s_per_step": st,
                        "ratio": ek / st, "steps": args.steps, "max_seq_length": base.max_seq_length,
                        "seconds": {n: [r.seconds for r in rs] for n, rs in runs.items()},
                        "others_cpu": {n: [r.others_cpu for r in rs] for n, rs in runs.items()}})
    return records


def memory_child(args) -> None:
    """``--child-steps`` training steps of one configuration; prints time and memory as JSON (a fresh process)."""
    import contextlib
    import resource

    import psutil
    import torch

    from embedkit.heap import reuse_freed_memory

    with reuse_freed_memory() if args.child_heap else contextlib.nullcontext():
        model = load(args)
        pairs = scifact_pairs()
        loss = make_loss(args.child_loss, model, args.mini_batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        feed = batches(pairs * (1 + args.child_batch // len(pairs)), args.child_batch)
        before = psutil.Process().memory_info().rss
        if model.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        steps = []
        for _ in range(args.child_steps):
            anchors, positives = next(feed)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            run, _ = timed(args.child_loss, lambda: step(model, loss, optimizer, anchors, positives, model.device))
            after = resource.getrusage(resource.RUSAGE_SELF)
            steps.append({"seconds": run.seconds, "others_cpu": run.others_cpu,
                          "system_seconds": after.ru_stime - usage.ru_stime,
                          "minor_faults": after.ru_minflt - usage.ru_minflt})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if model.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated()
    print(json.dumps({"loss": args.child_loss, "batch": args.child_batch, "mini_batch": args.mini_batch,
                      "heap": args.child_heap, "peak_bytes": peak, "before_step_bytes": before,
                      "seconds": steps[0]["seconds"], "others_cpu": steps[0]["others_cpu"], "steps": steps,
                      "device": str(model.device)}))


def child(args, loss: str, batch: int, steps: int = 1, heap: bool = False) -> dict:
    command = [sys.executable, __file__, "--child-loss", loss, "--child-batch", str(batch), "--mini-batch",
               str(args.mini_batch), "--model", args.model, "--child-steps", str(steps)]
    command += ["--child-heap"] if heap else []
    command += ["--max-seq-length", str(args.max_seq_length)] if args.max_seq_length else []
    command += ["--device", args.device] if args.device else []
    command += ["--threads", str(args.threads)] if args.threads else []
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def memory(args) -> list[dict]:
    results = {}
    for loss, batch in (("infonce", args.mini_batch), ("cached-infonce", args.cached_batch)):
        results[loss] = child(args, loss, batch)
        r = results[loss]
        print(f"  {loss:15s} batch {batch:5d}: peak {r['peak_bytes'] / 2**20:8.1f} MiB (before the step "
              f"{r['before_step_bytes'] / 2**20:.1f} MiB), {r['seconds']:.1f} s, others {r['others_cpu']:.2f} cores",
              flush=True)
    plain, cached = results["infonce"], results["cached-infonce"]
    ratio = cached["peak_bytes"] / plain["peak_bytes"]
    growth = ((cached["peak_bytes"] - cached["before_step_bytes"]) /
              max(1, plain["peak_bytes"] - plain["before_step_bytes"]))
    print(f"==> CachedInfoNCELoss at batch {args.cached_batch} / InfoNCELoss at batch {args.mini_batch}: peak ratio "
          f"{ratio:.3f} (target <= 1.3); ratio of the step's own growth {growth:.3f}", flush=True)
    return [{"memory": True, "peak_ratio": ratio, "growth_ratio": growth, **{k: v for k, v in results.items()}}]


def heap(args) -> list[dict]:
    batch = args.batch_sizes[0]
    runs = {False: [], True: []}
    for _ in range(args.repeats):
        for on in (False, True):
            r = child(args, "infonce", batch, args.warmup + args.steps, heap=on)
            runs[on].append(r)
            timed_steps = r["steps"][args.warmup:]
            print(f"  reuse_freed_memory={on!s:5s}: " + " ".join(f"{s['seconds']:.2f}s" for s in timed_steps) +
                  f", peak {r['peak_bytes'] / 2**30:.2f} GiB, others "
                  f"{max(s['others_cpu'] for s in timed_steps):.2f} cores", flush=True)
    summary = {}
    for on in (False, True):
        timed_steps = [s for r in runs[on] for s in r["steps"][args.warmup:]]
        summary[on] = {key: median([s[key] for s in timed_steps])
                       for key in ("seconds", "system_seconds", "minor_faults")}
        summary[on]["peak_bytes"] = max(r["peak_bytes"] for r in runs[on])
    off, on = summary[False], summary[True]
    print(f"==> batch {batch}, {args.max_seq_length or 'model'} tokens: {on['seconds']:.2f} s/step with "
          f"reuse_freed_memory vs {off['seconds']:.2f} without (ratio {on['seconds'] / off['seconds']:.3f}); "
          f"system {on['system_seconds']:.2f} vs {off['system_seconds']:.2f} s/step; minor faults "
          f"{on['minor_faults']:.0f} vs {off['minor_faults']:.0f} per step; peak "
          f"{on['peak_bytes'] / 2**30:.2f} vs {off['peak_bytes'] / 2**30:.2f} GiB", flush=True)
    return [{"heap": True, "batch_size": batch, "max_seq_length": args.max_seq_length,
             "with": on, "without": off, "runs": {str(k): v for k, v in runs.items()}}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per loss and batch size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps per loss")
    parser.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs (default: the model's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own; 1 is steadier on a shared machine)")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--heap", action="store_true", help="steps with and without embedkit.heap.reuse_freed_memory")
    parser.add_argument("--repeats", type=int, default=2, help="--heap: processes per arm")
    parser.add_argument("--cached-batch", type=int, default=1024)
    parser.add_argument("--mini-batch", type=int, default=64)
    parser.add_argument("--child-loss", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child-heap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="append the records as JSON lines to this file")
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child_loss:
        memory_child(args)
        return
    print(f"machine {machine()}", flush=True)
    records = memory(args) if args.memory else heap(args) if args.heap else speed(args)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"benchmark": "train", "argv": sys.argv[1:], **r}) + "\n")


if __name__ == "__main__":
    main()
