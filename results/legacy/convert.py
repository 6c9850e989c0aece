"""Convert the benchmark results written before records existed (benchmarks/results/*.jsonl, *.json) into
records, one per result line or file, marking what they never recorded as unknown.

Those files hold the measurements and the benchmark's arguments, but not the commit the code was at, the
package versions, the CPU model or its instruction-set flags. The converted record says so: ``commit``,
``packages``, ``cpu.model`` and ``cpu.flags`` are ``"unknown"``; ``details.committed_in`` is the commit
that added the line to the repository (``git blame``: the code that measured it is that commit or an
earlier one) and ``details.source`` the file and line. Run once; its output is committed:

    python results/legacy/convert.py
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from embedkit.records import RECORD_VERSION, write_record

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "benchmarks" / "results"
HERE = Path(__file__).resolve().parent
UNKNOWN = "unknown"
SCRIPTS = {"encode": "encode_bench.py", "stream": "stream_bench.py", "train": "train_bench.py",
           "ceiling": "ceiling_bench.py"}


def blame(path: Path) -> list[tuple[str, str]]:
    """(commit, ISO date) that added each line of ``path``."""
    out = subprocess.run(["git", "-C", str(ROOT), "blame", "--line-porcelain", str(path.relative_to(ROOT))],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    lines, commit = [], None
    for line in out:
        head = line.split(" ")
        if len(head[0]) == 40 and len(head) >= 3 and head[1].isdigit():
            commit = head[0]
        elif line.startswith("author-time "):
            from datetime import datetime, timezone

            lines.append((commit, datetime.fromtimestamp(int(line.split()[1]), timezone.utc).isoformat()))
    return lines


def legacy_record(name: str, metrics: dict, command: str, wall_seconds, source: str, committed: tuple[str, str],
                  machine: dict | None) -> dict:
    machine = machine or {}
    return {
        "record_version": RECORD_VERSION, "name": name, "metrics": metrics, "command": command,
        "wall_seconds": wall_seconds, "commit": UNKNOWN, "packages": UNKNOWN,
        "cpu": {"model": UNKNOWN, "cores": machine.get("cpus", UNKNOWN), "flags": UNKNOWN},
        "device": "cpu", "python": machine.get("python", UNKNOWN), "platform": machine.get("platform", UNKNOWN),
        "date": UNKNOWN,
        "details": {"source": source, "committed_in": committed[0], "committed_at": committed[1],
                    "converted": "written before records existed: commit, package versions, CPU model and "
                                 "flags were not recorded (sessions' notes name a 2-core AMD EPYC with AVX2, "
                                 "no AVX-512, no VNNI)"},
    }


def convert_jsonl(path: Path) -> list[Path]:
    written = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, (line, committed) in enumerate(zip(lines, blame(path)), start=1):
        row = json.loads(line)
        script = SCRIPTS[row["benchmark"]]
        command = " ".join(["python", f"benchmarks/{script}", *row.get("argv", [])])
        metrics = {k: v for k, v in row.items() if k not in ("argv", "machine")}
        wall = row.get("seconds") if isinstance(row.get("seconds"), (int, float)) else None
        name = f"{path.stem}-{number:02d}"
        record = legacy_record(name, metrics, command, wall, f"{path.relative_to(ROOT)} line {number}", committed,
                               row.get("machine"))
        written.append(write_record(HERE / f"{name}.json", record))
    return written


def convert_json(path: Path, command: str) -> Path:
    committed = blame(path)[0]
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return write_record(HERE / f"{path.stem}.json",
                        legacy_record(path.stem, metrics, command, None, str(path.relative_to(ROOT)), committed, None))


# The .json results do not store their arguments; these are the commands benchmarks/README.md gives for them.
JSON_COMMANDS = {
    "index_bench_103006": "python benchmarks/index_bench.py --vectors /work/stream100k/full.npy --threads 2 --repeats 7",
    "index_bench_31768": "python benchmarks/index_bench.py --limit 32768 --threads 1 --repeats 7",
    "index_memory_1000000_Flat": "python benchmarks/index_bench.py --limit 32768 --memory-check 1000000 --spec Flat "
                                 "--threads 1",
    "index_memory_1000000_HNSW32": "python benchmarks/index_bench.py --vectors /work/stream100k/full.npy "
                                   "--memory-check 1000000 --spec HNSW32 --threads 2",
    "index_memory_1000000_IVF1024_Flat": "python benchmarks/index_bench.py --limit 32768 --memory-check 1000000 "
                                         "--spec IVF1024,Flat --threads 1",
    "index_scifact": "python benchmarks/index_bench.py --scifact --threads 1",
}


def main() -> None:
    written = [p for path in sorted(SOURCE.glob("*.jsonl")) for p in convert_jsonl(path)]
    written += [convert_json(SOURCE / f"{stem}.json", command) for stem, command in JSON_COMMANDS.items()]
    print(f"wrote {len(written)} records to {HERE.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
