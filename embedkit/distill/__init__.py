"""Turning a model into a faster one: static (model2vec) embeddings."""
from embedkit.distill.static import distill_static

__all__ = ["distill_static"]
