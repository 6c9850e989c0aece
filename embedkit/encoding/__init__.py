"""The encoding engine used everywhere in embedkit, its on-disk embedding cache, streaming and sharded encoding."""
from embedkit.encoding.backends import BACKENDS
from embedkit.encoding.cache import EmbeddingCache, cached_encode
from embedkit.encoding.api import encode
from embedkit.encoding.engine import resolve_prompt
from embedkit.encoding.shards import encode_file_parallel, merge_npy, shard_range
from embedkit.encoding.stream import encode_file

__all__ = ["BACKENDS", "EmbeddingCache", "cached_encode", "encode", "encode_file", "encode_file_parallel",
           "merge_npy", "resolve_prompt", "shard_range"]
