"""Tables of the index area, generated from the records in this folder (see results/tables.py)."""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent


def _record(name: str) -> dict:
    return load_record(HERE / f"{name}.json")


def reliability() -> str:
    writers, kill, faults = _record("reliability-writers"), _record("reliability-kill"), _record("reliability-faults")
    fuzz, lock = _record("reliability-fuzz"), _record("lock-cost")
    w, k, f, z, lk = (r["metrics"] for r in (writers, kill, faults, fuzz, lock))
    rows = [
        ("Concurrent writers", f"{w['writers']} processes x {w['batches_per_writer']} batches x "
         f"{w['documents_per_batch']} documents onto {w['documents_before']:,}, {w['readers']} readers searching",
         f"{w['documents_found']:,} of {w['documents_expected']:,} documents, {w['lost']} lost, {w['duplicated']} "
         f"twice, {w['verify_problems']} verify problems; readers: {w['reader_loads']:,} loads, "
         f"{w['reader_errors']} errors ({fmt(w['updates_per_second'])} updates/s)", "reliability-writers.json"),
        ("Kill points", f"SIGKILL of a writer at a random moment (up to {fmt(k['longest_delay_s'], 1)} s) of its "
         "load-add-save cycles",
         f"{k['survived']} of {k['rounds']} survived: the folder loaded and verified, holding the state before "
         f"({k['cut_saves_found_before']}) or after ({k['cut_saves_found_after']}) the cut update; "
         f"{k['completed_saves']} updates completed between the kills", "reliability-kill.json"),
        ("I/O faults", f"ENOSPC and EIO on each of the {f['writes_per_save']} writes, EIO on each of the "
         f"{f['flushes_per_save']} flushes of a save",
         f"{f['failed_cleanly']} of {f['faults_injected']} failed in one line with exit 2, the index intact",
         "reliability-faults.json"),
        ("Fuzz cases", f"{z['loaders']} loaders (STS, SentEval, BEIR, document streams, pairs, sentences, recipes, "
         "index manifests and data files, query files)",
         f"{z['cases']:,} generated inputs, " + ("no traceback, every error one line naming the file"
                                                 if not z["failed_tests"] else f"FAILED: {z['failed_tests']}"),
         "reliability-fuzz.json"),
        ("Lock cost", f"one `embedkit index add` of {lk['added_documents']} documents to {lk['index_documents']:,} "
         f"(both sides), {lk['repeats']} runs each, interleaved",
         f"{fmt(lk['lock_acquire_release_us_median'], 0)} µs to take and release the lock (p99 "
         f"{fmt(lk['lock_acquire_release_us_p99'], 0)} µs); the add takes {fmt(lk['add_ms_with_lock_median'])} ms "
         f"with it, {fmt(lk['add_ms_without_lock_median'])} ms without (medians; target: the lock under "
         f"{fmt(lk['target_ms'], 0)} ms of an add)", "lock-cost.json"),
    ]
    cpu = lock["cpu"]["model"]
    lines = ["| Check | What ran | Result | Record |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | [{d}](../results/index/{d}) |" for a, b, c, d in rows]
    lines.append("")
    lines.append(f"CPU: {cpu}. While the writers ran, {writers['details']['load']}; while the lock benchmark "
                 f"ran, {lock['details']['load']}.")
    return "\n".join(lines)


def save_cost() -> str:
    record = _record("save-cost")
    m = record["metrics"]
    sizes = m["save_ms_median"]
    order = ["faiss.write_index", "faiss.write_index + fsync + rename", "FaissIndex.save",
             "IndexFolder.save (FAISS + BM25)"]  # records keep keys sorted: from least to most done
    ways = sorted((k for k in next(iter(sizes.values())) if k != "bytes_faiss"),
                  key=lambda k: order.index(k) if k in order else len(order))
    lines = ["| Documents (FAISS file) | " + " | ".join(f"`{w}`" for w in ways) + " |",
             "|---|" + "---:|" * len(ways)]
    for n, row in sizes.items():
        lines.append(f"| {int(n):,} ({fmt(row['bytes_faiss'] / 1e6, 1)} MB) | "
                     + " | ".join(f"{fmt(row[w])} ms" for w in ways) + " |")
    lines.append("")
    lines.append(f"Medians of {m['repeats']} interleaved saves each, {m['spec']} index of dimension {m['dim']}, on "
                 f"{m['filesystem']}; CPU: {record['cpu']['model']}; {record['details']['load']}. "
                 "Record: [save-cost.json](../results/index/save-cost.json).")
    return "\n".join(lines)


TABLES = {"index-reliability": reliability, "index-save-cost": save_cost}
