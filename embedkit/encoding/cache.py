"""On-disk embedding cache, in chunks, keyed by the model's weight fingerprint and the texts.

Chunking means an interrupted encode of a large corpus keeps the chunks it finished, and a corpus
that shares chunks with an earlier one (same texts, same order) reuses them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from embedkit.encoding.api import encode
from embedkit.encoding.auto import resolve_backend
from embedkit.encoding.backends import DEFAULT_BACKEND, embedding_variant
from embedkit.encoding.engine import Role, resolve_prompt
from embedkit.paths import cache_dir

CHUNK = 2048
PROGRESS_MIN_TEXTS = 1000  # show_progress=None: a bar only when at least this many texts need encoding


class EmbeddingCache:
    """A folder of ``.npy`` files, one per (model, prompt, normalisation, chunk of texts)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return np.load(p)
        except (ValueError, OSError, EOFError):  # a damaged entry is a miss, not a failure
            p.unlink(missing_ok=True)
            return None

    def put(self, key: str, array: np.ndarray) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def info(self) -> dict:
        files = list(self.root.rglob("*.npy")) if self.root.exists() else []
        return {"path": str(self.root), "entries": len(files), "bytes": sum(f.stat().st_size for f in files)}

    def clear(self) -> int:
        n = self.info()["entries"]
        shutil.rmtree(self.root, ignore_errors=True)
        return n


def _chunk_key(fingerprint: str, prompt: str, normalize: bool, texts: Sequence[str], backend: str = DEFAULT_BACKEND) -> str:
    # Every backend has entries of its own: the key names it (and an int8 graph's version), so a vector
    # read back was made by the backend asked for.
    variant = embedding_variant(backend)
    h = hashlib.sha256(f"{fingerprint}\0{prompt}\0{normalize}\0{len(texts)}\0{variant}\0".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def cached_encode(
    model,
    texts: Sequence[str],
    *,
    role: Role | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    normalize: bool = False,
    device: str | None = None,
    show_progress: bool | None = None,
    cache: EmbeddingCache | None = None,
    fingerprint: str | None = None,
    backend: str = DEFAULT_BACKEND,
    encode_missing: Callable[[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Like :func:`embedkit.encoding.encode`, reading and writing the embedding cache chunk by chunk
    (``backend="auto"`` is resolved first, so entries are keyed by the backend that made them).

    The progress bar (``show_progress=None``: when at least ``PROGRESS_MIN_TEXTS`` texts are not cached)
    moves batch by batch. Cached texts count as done from the start, so its rate and time estimate are the
    encoding's own; the rate is the average since the start (tqdm ``smoothing=0``), not that of the last
    batches, which longest-first batching makes slowest at the start of every chunk.

    ``encode_missing(texts)`` computes the chunks the cache lacks when given (e.g. a lookup into
    embeddings made on a Ray cluster, with the same model, prompt and options), instead of the engine.
    """
    from tqdm.auto import tqdm

    from embedkit.models import model_fingerprint

    texts = list(texts)
    cache = cache or EmbeddingCache()
    fingerprint = fingerprint or model_fingerprint(model)
    full_prompt = resolve_prompt(model, role, prompt)
    backend = resolve_backend(model, backend, device) if texts else backend
    chunks = [texts[start:start + CHUNK] for start in range(0, len(texts), CHUNK)]
    keys = [_chunk_key(fingerprint, full_prompt, normalize, chunk, backend) for chunk in chunks]
    parts = [cache.get(key) for key in keys]
    parts = [emb if emb is not None and emb.shape[0] == len(chunk) else None for emb, chunk in zip(parts, chunks)]
    missing = sum(len(chunk) for chunk, emb in zip(chunks, parts) if emb is None)
    show = show_progress if show_progress is not None else missing >= PROGRESS_MIN_TEXTS
    with tqdm(total=len(texts), initial=len(texts) - missing, desc="encode", unit="text", smoothing=0,
              disable=not (show and missing)) as bar:
        for i, (chunk, key) in enumerate(zip(chunks, keys)):
            if parts[i] is None:
                if encode_missing is not None:
                    parts[i] = encode_missing(chunk)
                    bar.update(len(chunk))
                else:
                    parts[i] = encode(model, chunk, prompt=full_prompt, batch_size=batch_size, normalize=normalize,
                                      device=device, backend=backend, progress=bar.update)
                cache.put(key, parts[i])
    if not parts:
        return encode(model, [], normalize=normalize)
    return np.concatenate(parts, axis=0)
