"""Persistent, id-mapped, tunable semantic search indexes on FAISS, plus BM25 and hybrid search.

Only this package imports faiss. See :mod:`embedkit.index.faiss_index` for the index, :mod:`embedkit.index.folder`
for an index folder as a whole (both sides, the write API), :mod:`embedkit.index.storage` for crash-safe
generations and consistent reads, :mod:`embedkit.index.lock` for the one-writer lock, :mod:`embedkit.index.build`
for streaming builds, :mod:`embedkit.index.fusion` for RRF, :mod:`embedkit.index.quantized` for binary specs and
rescoring from memory-mapped rows.
"""
from embedkit.index.bm25 import BM25Index
from embedkit.index.build import add_documents, build_from_vectors, build_index
from embedkit.index.chunking import Chunker
from embedkit.index.faiss_index import FaissIndex
from embedkit.index.folder import IndexFolder
from embedkit.index.fusion import reciprocal_rank_fusion
from embedkit.index.hits import Hit, SearchResults, TunePoint, TuneResult
from embedkit.index.hybrid import HybridSearcher
from embedkit.index.lock import DEFAULT_WAIT, IndexLockedError, writer_lock

__all__ = ["BM25Index", "Chunker", "DEFAULT_WAIT", "FaissIndex", "Hit", "HybridSearcher", "IndexFolder",
           "IndexLockedError", "SearchResults", "TunePoint", "TuneResult", "add_documents", "build_from_vectors",
           "build_index", "reciprocal_rank_fusion", "writer_lock"]
