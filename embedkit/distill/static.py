"""``distill_static``: a static embedding model from any transformer SentenceTransformer, with model2vec.

model2vec embeds every token of the model's own vocabulary once with the model (offline: no corpus, no
hub), reduces the vectors with PCA and weights them by a Zipf prior (SIF); a text's embedding is then the
mean of its tokens' vectors, a lookup and an average instead of a transformer pass. The result is saved
as a sentence-transformers folder (a ``StaticEmbedding`` module, then ``Normalize``), so
``embedkit.load_model``, ``SentenceTransformer(folder)`` and every embedkit command that takes ``--model``
load it like any model. Its speed and its STS-B / SciFact quality against the source model are in
benchmarks/README.md.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from embedkit.errors import ConfigError

DEFAULT_PCA_DIMS = 256


def distill_static(model, out: str | os.PathLike, pca_dims: int | None = DEFAULT_PCA_DIMS,
                   source: str | None = None) -> Path:
    """Distil ``model`` (a transformer SentenceTransformer) into a static model saved at ``out``; returns ``out``.

    ``pca_dims``: the output width (at most the model's; None keeps it). ``source`` is recorded in
    ``embedkit_static.json`` beside the model (what it was distilled from).
    """
    try:
        from model2vec.distill import distill_from_model
    except ImportError:
        raise ConfigError("distill static needs model2vec: pip install 'embedkit[static]'") from None
    from sentence_transformers.models import Transformer

    from embedkit.atomic import write_text_atomic
    from embedkit.models import embedding_dim, model_name

    first = model[0] if len(model) else None
    if not isinstance(first, Transformer):
        raise ConfigError(f"distill static needs a transformer model; this one starts with {type(first).__name__}")
    width = embedding_dim(model)
    if pca_dims is not None and not 1 <= pca_dims <= (width or pca_dims):
        raise ConfigError(f"--pca-dims must be in 1..{width}, got {pca_dims}")
    static = distill_from_model(model=first.auto_model, tokenizer=model.tokenizer, pca_dims=pca_dims,
                                device=str(model.device))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        static.save_pretrained(str(tmp))  # model2vec's layout is also a sentence-transformers folder
        write_text_atomic(tmp / "embedkit_static.json", json.dumps(
            {"source": source or model_name(model), "pca_dims": pca_dims, "method": "model2vec distill_from_model",
             "vocabulary": "the source model's own tokenizer"}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
