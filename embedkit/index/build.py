"""Building an index from a stream of documents: encode in slices, add as they come.

Memory holds the index's vectors plus one slice of texts and vectors at a time (plus, for specs that
need training, the training sample until it has been used), never the whole corpus twice. Slices are
encoded through the embedding cache (:func:`embedkit.encoding.cached_encode`), so a corpus encoded once
is read back, not encoded again; ``encode_for`` fills the cache ahead of a locked add.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from embedkit.errors import DataError
from embedkit.data.records import full_text
from embedkit.index.chunking import Chunker, Passage
from embedkit.index.faiss_index import FaissIndex
from embedkit.index.specs import training_size

ENCODE_SLICE = 2048


def embedding_dim(model) -> int:
    """The model's output dimension (sentence-transformers renamed the method in v5.2)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _passages(documents: Iterable, chunker: Chunker | None) -> Iterator[Passage]:
    for doc in documents:
        if chunker is None:
            yield Passage(doc.id, full_text(doc.title, doc.text), doc.text, doc.title, None)
        else:
            yield from chunker.passages(doc.id, doc.title, doc.text)


def encoded_slices(model, documents: Iterable, first_slice: int = ENCODE_SLICE, batch_size: int = 32,
                   chunk_tokens: int | None = None, chunk_overlap: int = 32, device: str | None = None,
                   prompt: str | None = None, show_progress: bool = True, total: int | None = None,
                   backend: str = "torch") -> Iterator[tuple[list[Passage], np.ndarray]]:
    """Documents as slices of passages (chunks when ``chunk_tokens``) with their vectors (role "document").

    Vectors (encoded by ``backend``) come through the embedding cache, so a corpus encoded once (by a build, an add, an evaluation
    of the same texts in the same order) is read back rather than encoded again. A document id repeated
    in the stream is refused."""
    from tqdm.auto import tqdm

    from embedkit.encoding import cached_encode
    from embedkit.models import model_fingerprint

    chunker = Chunker(model, chunk_tokens, chunk_overlap) if chunk_tokens else None
    fingerprint = model_fingerprint(model)  # once, not per slice (hashing MiniLM's weights takes ~0.3 s)
    buffer: list[Passage] = []
    seen: set[str] = set()
    size = first_slice

    def encoded() -> tuple[list[Passage], np.ndarray]:
        vectors = cached_encode(model, [p.encoded for p in buffer], role="document", prompt=prompt,
                                batch_size=batch_size, device=device, show_progress=False, fingerprint=fingerprint,
                                backend=backend)
        return list(buffer), vectors

    with tqdm(total=total, desc="index", unit="doc", disable=not show_progress) as bar:
        last_parent = None
        for passage in _passages(documents, chunker):
            parent = passage.parent_id or passage.id
            if parent != last_parent:
                if parent in seen:
                    raise DataError(f"document id {parent!r} appears twice in the documents")
                seen.add(parent)
                bar.update(1)
                last_parent = parent
            buffer.append(passage)
            if len(buffer) >= size:
                yield encoded()
                buffer.clear()
                size = ENCODE_SLICE
        if buffer:
            yield encoded()


def add_documents(index: FaissIndex, model, documents: Iterable, batch_size: int = 32,
                  chunk_tokens: int | None = None, chunk_overlap: int = 32, device: str | None = None,
                  prompt: str | None = None, show_progress: bool = True, total: int | None = None,
                  upsert: bool = False, backend: str | None = None) -> int:
    """Encode ``documents`` (objects with ``id``, ``title``, ``text``) slice by slice into ``index``.

    ``backend``: the encode backend (default: the one the index was built with, else exact ``torch``).

    Returns the number of vectors added (chunks count one each). An untrained index first gathers a
    training sample (see :func:`embedkit.index.specs.training_size`), trains on it, then streams.
    ``upsert``: documents already in the index are replaced (with all their chunks) instead of refused.
    """
    backend = backend or index.build_params.get("backend") or "torch"
    first_slice = max(ENCODE_SLICE, training_size(index.faiss_index))
    added = 0
    replaced: set[str] = set()
    for passages, vectors in encoded_slices(model, documents, first_slice, batch_size, chunk_tokens, chunk_overlap,
                                            device, prompt, show_progress, total, backend):
        if upsert:  # a document's chunks may span two slices: remove it once, before its first slice
            parents = [p for p in dict.fromkeys(p.parent_id or p.id for p in passages) if p not in replaced]
            present = index.documents_present(parents)
            if present:
                index.remove_documents(present)
            replaced.update(parents)
        index.add([p.id for p in passages], vectors, texts=[p.text for p in passages],
                  titles=[p.title for p in passages], parents=[p.parent_id for p in passages])
        added += len(passages)
    return added


def encode_for(index_manifest: dict, model, documents: Iterable, batch_size: int = 32, device: str | None = None,
               show_progress: bool = True, total: int | None = None) -> int:
    """Encode documents into the embedding cache exactly as ``add_documents`` will for the index described
    by ``index_manifest`` (its chunking and prompt, slice by slice), keeping no vectors: done before taking
    an index's writer lock, it leaves the locked add only cache reads. Returns the passages encoded."""
    built = index_manifest.get("build") or {}
    return sum(len(passages) for passages, _ in encoded_slices(
        model, documents, ENCODE_SLICE, batch_size, built.get("chunk_tokens"), built.get("chunk_overlap") or 32,
        device, built.get("document_prompt"), show_progress, total, built.get("backend") or "torch"))


def build_index(model, documents: Iterable, spec: str = "Flat", metric: str = "cosine", batch_size: int = 32,
                chunk_tokens: int | None = None, chunk_overlap: int = 32, device: str | None = None,
                show_progress: bool = True, prompt: str | None = None, model_source: str | None = None,
                total: int | None = None, backend: str = "torch") -> FaissIndex:
    """A new :class:`FaissIndex` over ``documents``, encoded with ``model`` (role "document").

    ``chunk_tokens``: split documents longer than this many tokens (title included) into overlapping
    chunks; each chunk's hit names its parent. ``model_source`` is recorded so that ``index search`` can
    load the model again (defaults to ``"default"`` for the packaged model). ``backend``: the encode
    backend (default exact float32 ``torch``; ``auto`` is resolved here), recorded so that queries and
    later additions are encoded by the same one.
    """
    from embedkit.encoding.auto import resolve_backend
    from embedkit.encoding.backends import embedding_variant
    from embedkit.models import model_fingerprint, model_name, model_source_of

    dim = embedding_dim(model)
    index = FaissIndex(dim, spec, metric, model_name=model_name(model), model_fingerprint=model_fingerprint(model),
                       model_source=model_source or model_source_of(model))
    index.build_params = {"chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap if chunk_tokens else None,
                          "document_prompt": prompt, "max_seq_length": getattr(model, "max_seq_length", None),
                          "truncate_dim": getattr(model, "truncate_dim", None),
                          "backend": resolve_backend(model, backend, device)}
    index.build_params["backend_variant"] = embedding_variant(index.build_params["backend"])
    added = add_documents(index, model, documents, batch_size, chunk_tokens, chunk_overlap, device, prompt,
                          show_progress, total)
    if not added:
        raise DataError("no documents to index (empty corpus)")
    return index


class NpyRows:
    """Rows of a ``.npy`` file read on demand with plain reads (no pickle, no memory map).

    A memory map would leave every page it touched resident (and counted in the process's memory)
    until the kernel reclaims it; reading slices keeps the build's memory at the index plus one slice.
    """

    def __init__(self, path):
        from embedkit.errors import DataError

        self.path = path
        try:
            with open(path, "rb") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise DataError(f"not a readable .npy file ({exc})", path=path) from None
        if dtype.hasobject or fortran:
            raise DataError("embeddings must be a plain C-order numeric array (no objects, no pickle)", path=path)
        self.shape, self.dtype, self.ndim = tuple(shape), dtype, len(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        row_items = int(np.prod(self.shape[1:]))
        row_bytes = row_items * self.dtype.itemsize
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            count = max(stop - start, 0)
            out = np.fromfile(self.path, dtype=self.dtype, count=count * row_items, offset=self.offset + start * row_bytes)
            return out.reshape((count,) + self.shape[1:])
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        with open(self.path, "rb") as f:
            for i, row in enumerate(np.asarray(rows).tolist()):
                f.seek(self.offset + row * row_bytes)
                out[i] = np.frombuffer(f.read(row_bytes), dtype=self.dtype).reshape(self.shape[1:])
        return out


def truncate_embeddings(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` columns of each row, L2-renormalised (Matryoshka truncation of precomputed vectors,
    as the encoding engine does for a model loaded with ``dim``); all-zero rows stay zero."""
    x = np.array(np.asarray(vectors)[:, :dim], dtype=np.float32, order="C")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def build_from_vectors(ids, vectors: np.ndarray, spec: str = "Flat", metric: str = "cosine",
                       texts=None, titles=None, model_name: str | None = None, model_fingerprint: str | None = None,
                       model_source: str | None = None, slice_size: int = 65536,
                       show_progress: bool = True, dim: int | None = None) -> FaissIndex:
    """A new index from precomputed vectors (an array or :class:`NpyRows`), added slice by slice.

    ``dim``: keep each vector's first ``dim`` dimensions, renormalised (see :func:`truncate_embeddings`)."""
    from tqdm.auto import tqdm

    ids = list(ids)
    if len(ids) != len(vectors):
        raise DataError(f"{len(ids)} ids for {len(vectors)} vectors")
    if not ids:
        raise DataError("no vectors to index (empty input)")
    if vectors.ndim != 2:
        raise DataError(f"embeddings must be a 2-D array, got shape {tuple(vectors.shape)}")
    width = int(vectors.shape[1])
    if dim is not None and not 1 <= dim <= width:
        raise DataError(f"--dim must be in 1..{width} (the width of the embeddings), got {dim}")

    def rows(selection) -> np.ndarray:
        x = np.asarray(vectors[selection])
        return x if dim is None or dim == width else truncate_embeddings(x, dim)

    index = FaissIndex(dim or width, spec, metric, model_name=model_name,
                       model_fingerprint=model_fingerprint, model_source=model_source)
    if dim is not None and dim != width:
        index.build_params["truncate_dim"] = dim
    sample = training_size(index.faiss_index)
    if sample:  # evenly spaced rows, so a corpus sorted by topic still trains every region
        index.train(rows(np.linspace(0, len(ids) - 1, min(sample, len(ids))).astype(np.int64)))
    with tqdm(total=len(ids), desc="index", unit="vec", disable=not show_progress) as bar:
        for start in range(0, len(ids), slice_size):
            stop = start + slice_size
            index.add(ids[start:stop], rows(slice(start, stop)),
                      texts=None if texts is None else texts[start:stop],
                      titles=None if titles is None else titles[start:stop])
            bar.update(min(stop, len(ids)) - start)
    return index
