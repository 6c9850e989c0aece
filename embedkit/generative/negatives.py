"""LM-generated negatives for RankGen (the paper's GENERATIVE negatives): continuations an LM samples
from each prefix, cached on disk and resumable.

The cache is a folder: ``manifest.json`` (the LM, sampling settings, seed and a hash of the examples)
and ``shard-NNNNN.jsonl`` files of ``shard_size`` examples each, every one written atomically. An
interrupted run keeps its finished shards; the next run generates only the missing ones, and each
shard's sampling seed depends only on its index, so a resumed cache equals an uninterrupted one.
A folder made with other settings or other examples is refused rather than mixed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

from embedkit.errors import ConfigError, DataError
from embedkit.generative.documents import Example
from embedkit.generative.lm import CausalLM
from embedkit.generative.sampling import SamplingConfig, sample_continuations

MANIFEST = "manifest.json"


def examples_hash(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.id}\0{e.prefix}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.jsonl"


def _check_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise DataError("damaged manifest; delete the folder to regenerate", path=path) from None
        if old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ConfigError(f"{folder}: LM negatives there were made with other settings ({', '.join(changed)}); "
                              "use another folder or delete this one")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True))


def negatives_manifest(examples: Sequence[Example], lm_name: str, num_per_prefix: int, sampling: SamplingConfig,
                       seed: int, shard_size: int) -> dict:
    """Everything the cached negatives depend on."""
    return {"lm": lm_name, "sampling": sampling.model_dump(), "num_per_prefix": num_per_prefix, "seed": seed,
            "shard_size": shard_size, "examples": len(examples), "examples_hash": examples_hash(examples)}


def manifest_key(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]


def generate_negatives(examples: Sequence[Example], lm: CausalLM, folder: str | os.PathLike, *, num_per_prefix: int = 2,
                       sampling: SamplingConfig | None = None, seed: int = 0, shard_size: int = 16,
                       batch_size: int = 16, show_progress: bool = True) -> dict[str, list[str]]:
    """Generate (or finish generating) ``num_per_prefix`` LM continuations per example; returns them by id."""
    from tqdm.auto import tqdm

    sampling = sampling or SamplingConfig()
    folder = Path(folder)
    manifest = negatives_manifest(examples, lm.name, num_per_prefix, sampling, seed, shard_size)
    _check_manifest(folder, manifest)
    shards = range(0, (len(examples) + shard_size - 1) // shard_size)
    missing = [i for i in shards if not _shard_path(folder, i).exists()]
    with tqdm(total=len(examples), desc="LM negatives", unit="prefix", disable=not show_progress) as bar:
        bar.update(len(examples) - sum(len(examples[i * shard_size:(i + 1) * shard_size]) for i in missing))
        for index in missing:
            chunk = examples[index * shard_size:(index + 1) * shard_size]
            texts = sample_continuations(lm, [e.prefix for e in chunk], num_per_prefix, sampling,
                                         seed=seed * 1_000_003 + index, batch_size=batch_size)
            lines = [json.dumps({"id": e.id, "negatives": [t.strip() for t in negs]}, ensure_ascii=False)
                     for e, negs in zip(chunk, texts)]
            _write_atomic(_shard_path(folder, index), "\n".join(lines) + "\n")
            bar.update(len(chunk))
    return load_negatives(folder)


def load_negatives(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Every cached example's LM negatives, by example id."""
    folder = Path(folder)
    out: dict[str, list[str]] = {}
    for shard in sorted(folder.glob("shard-*.jsonl")):
        for number, line in enumerate(shard.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                out[str(record["id"])] = [str(t) for t in record["negatives"]]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError("not a negatives record {id, negatives}", path=shard, line=number) from None
    return out
