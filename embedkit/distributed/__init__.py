"""Scale-out on Ray Data: encode corpora on a cluster into Parquet shards, and run the tasks of an IVF build.

Only this package imports ray, and only inside the functions that need it: reading an embeddings
folder (:class:`EmbeddingsFolder`) needs pyarrow alone. Install with ``pip install 'embedkit[ray]'``.

- :func:`encode_on_ray`: text / BEIR JSONL / Parquet in, a folder of ``(id, embedding)`` Parquet shards
  out, in input order, resumable (:mod:`embedkit.distributed.pipeline`).
- :func:`encode_texts_on_ray`: the same for texts in memory (``eval retrieval --ray`` fills the
  embedding cache with it).
- :class:`EmbeddingsFolder`: read such a folder part by part (:mod:`embedkit.distributed.output`); indexes
  are built from it one floor up, in :mod:`embedkit.index.from_embeddings` (its Ray tasks through
  :mod:`embedkit.distributed.tasks`).
"""
from embedkit.distributed.output import EmbeddingsFolder
from embedkit.distributed.pipeline import RayEncodeResult, encode_on_ray, encode_texts_on_ray

__all__ = ["EmbeddingsFolder", "RayEncodeResult", "encode_on_ray", "encode_texts_on_ray"]
