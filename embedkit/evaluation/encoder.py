"""An mteb ``EncoderProtocol`` over any embedkit model.

mteb's own SentenceTransformer wrapper encodes batch by batch with no cache and names every local
model ``no_model_name/available``; this adapter gathers a task's texts into one call of
:func:`embedkit.encoding.cached_encode` (cache + length sorting) and names the model by its weight
fingerprint, so results of two local models never collide.

``documents`` maps document texts to embeddings made elsewhere with the same model and document prompt
(``eval retrieval --ray`` makes them on a Ray cluster): those texts are taken from it, not encoded again,
and go into the embedding cache like any other.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from embedkit.encoding import EmbeddingCache, cached_encode, encode
from embedkit.evaluation._mteb import import_mteb
from embedkit.models import embedding_dim, model_fingerprint, model_name


class MtebEncoder:
    def __init__(self, model, *, batch_size: int = 32, device: str | None = None, query_prompt: str | None = None,
                 document_prompt: str | None = None, cache: EmbeddingCache | None = None, show_progress: bool = True,
                 documents: Mapping[str, np.ndarray] | None = None):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.cache = cache
        self.show_progress = show_progress
        self.fingerprint = model_fingerprint(model)
        self.documents = documents

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None, prompt_type=None, **kwargs) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        role = None if prompt_type is None else ("query" if str(prompt_type.value) == "query" else "document")
        prompt = self.prompts.get(role) if role else None
        missing = self._from_documents(prompt) if role == "document" and self.documents else None
        return cached_encode(self.model, texts, role=role, prompt=prompt, batch_size=self.batch_size,
                             device=self.device,
                             show_progress=None if self.show_progress else False,  # None: only for long encodes
                             cache=self.cache,
                             fingerprint=self.fingerprint, encode_missing=missing)

    def _from_documents(self, prompt: str | None):
        def encode_missing(texts: list[str]) -> np.ndarray:
            rows = [self.documents.get(t) for t in texts]
            absent = [i for i, row in enumerate(rows) if row is None]
            if absent:  # a text joined differently than expected: encode it here
                fresh = encode(self.model, [texts[i] for i in absent], role="document", prompt=prompt,
                               batch_size=self.batch_size, device=self.device, show_progress=False)
                for i, row in zip(absent, fresh):
                    rows[i] = row
            return np.stack(rows).astype(np.float32, copy=False)

        return encode_missing

    def similarity(self, embeddings1, embeddings2):
        from sentence_transformers.util import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from sentence_transformers.util import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    @property
    def mteb_model_meta(self):
        mteb = import_mteb()
        name = model_name(self.model)
        name = name if "/" in name else f"local/{name}"
        dim = embedding_dim(self.model)
        return mteb.models.ModelMeta(
            loader=None, name=name, revision=self.fingerprint, release_date=None, languages=None,
            n_parameters=None, memory_usage_mb=None, max_tokens=getattr(self.model, "max_seq_length", None),
            embed_dim=dim, license=None, open_weights=True, public_training_code=None, public_training_data=None,
            framework=["Sentence Transformers", "PyTorch"], similarity_fn_name="cosine", use_instructions=None,
            training_datasets=None,
        )
