"""Matryoshka representation learning around any embedkit contrastive loss.

Kusupati et al., "Matryoshka Representation Learning", NeurIPS 2022: the loss is applied to the first
``d`` dimensions of the embeddings (renormalised) for each ``d`` in ``dims``, weighted, and summed, so that
a prefix of the embedding is itself a good embedding and can be cut off at search time (``--dim``).

Batch: whatever the wrapped loss expects (its columns, its labels).

The work is sentence-transformers' ``MatryoshkaLoss``: it runs the model's forward pass once per step,
caches it, and calls the wrapped loss once per width on truncated copies; for GradCache losses (embedkit's
:class:`~embedkit.losses.cached.CachedInfoNCELoss`, which uses sentence-transformers' ``CachedLossMixin``)
it truncates the cached mini-batch embeddings inside ``calculate_loss`` instead. Losses that gather
embeddings across processes gather the truncated ones. This module only checks the configuration at
the boundary (widths within the model's, weights that match) and says which losses it fits.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from embedkit.errors import ConfigError


def matryoshka_loss(model, loss: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None,
                    n_dims_per_step: int = -1) -> nn.Module:
    """``loss`` trained at every width in ``dims`` (weights default to 1 each).

    ``n_dims_per_step``: widths sampled per step (-1: all of them every step).
    """
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    dims = [int(d) for d in dims]
    width = model.get_embedding_dimension()
    if not dims:
        raise ConfigError("loss.dims: give at least one width")
    if len(set(dims)) != len(dims):
        raise ConfigError(f"loss.dims: widths repeat ({dims})")
    if any(d < 1 or (width is not None and d > width) for d in dims):
        raise ConfigError(f"loss.dims: every width must be in 1..{width} (the model's), got {dims}")
    if weights is None:
        weights = [1.0] * len(dims)
    if len(weights) != len(dims):
        raise ConfigError(f"loss.weights: {len(weights)} weights for {len(dims)} dims")
    if any(w <= 0 for w in weights):
        raise ConfigError(f"loss.weights: every weight must be positive, got {list(weights)}")
    if n_dims_per_step == 0 or n_dims_per_step < -1:
        raise ConfigError(f"loss.n_dims_per_step must be -1 (all widths) or positive, got {n_dims_per_step}")
    return MatryoshkaLoss(model, loss, matryoshka_dims=dims, matryoshka_weights=list(weights),
                          n_dims_per_step=n_dims_per_step)
