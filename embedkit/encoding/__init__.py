"""The encoding engine used everywhere in embedkit, and its on-disk embedding cache."""
from embedkit.encoding.cache import EmbeddingCache, cached_encode
from embedkit.encoding.engine import encode, resolve_prompt

__all__ = ["EmbeddingCache", "cached_encode", "encode", "resolve_prompt"]
