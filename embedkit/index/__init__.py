"""Persistent, id-mapped, tunable semantic search indexes on FAISS, plus BM25 and hybrid search.

Only this package imports faiss. See :mod:`embedkit.index.faiss_index` for the index and its folder
layout, :mod:`embedkit.index.build` for streaming builds, :mod:`embedkit.index.fusion` for RRF.
"""
from embedkit.index.bm25 import BM25Index
from embedkit.index.build import add_documents, build_from_vectors, build_index
from embedkit.index.chunking import Chunker, full_text
from embedkit.index.faiss_index import FaissIndex
from embedkit.index.fusion import reciprocal_rank_fusion
from embedkit.index.hits import Hit, SearchResults, TunePoint, TuneResult
from embedkit.index.hybrid import HybridSearcher

__all__ = ["BM25Index", "Chunker", "FaissIndex", "Hit", "HybridSearcher", "SearchResults", "TunePoint", "TuneResult",
           "add_documents", "build_from_vectors", "build_index", "full_text", "reciprocal_rank_fusion"]
