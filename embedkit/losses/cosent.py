"""CoSENT: a ranking loss over the similarity scores of sentence pairs (Su 2022; Huang et al. 2024).

sentence-transformers' ``CoSENTLoss`` is exactly this loss, so it is reused rather than rewritten;
this subclass only fixes the documented embedkit signature (cosine similarity, ``scale``) and gives
users the name in ``embedkit.losses``. Its ``compute_loss_from_embeddings`` is the pure function of
the embeddings:

    loss = log(1 + sum over pairs (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i)))

where ``cos_k`` is the cosine similarity of pair k's two sentences and ``label_k`` its gold score.
"""
from __future__ import annotations

from sentence_transformers.sentence_transformer.losses import CoSENTLoss as _STCoSENTLoss
from sentence_transformers.util import pairwise_cos_sim


class CoSENTLoss(_STCoSENTLoss):
    def __init__(self, model, scale: float = 20.0) -> None:
        """CoSENT for ``(sentence1, sentence2, score)`` batches (e.g. STS-B train, scores in any range:
        only their order matters). ``scale`` is the inverse temperature (20 in the CoSENT write-up)."""
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        super().__init__(model, scale=scale, similarity_fct=pairwise_cos_sim)
