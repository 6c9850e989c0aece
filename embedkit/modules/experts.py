"""Domain experts inside a BERT-like encoder: the feed-forward blocks of chosen layers become N copies.

Kapur, Hallee et al. 2024, "Contrastive Learning and Mixture of Experts Enables Precise Vector
Embeddings" (arXiv:2401.15713) extend BERT with N experts copied from the MLP of its layers and route
every sentence to the expert of its domain ("enforced routing"). Here the copies are made in place on
any Hugging Face encoder whose layers hold their feed-forward block in known attributes, so the
attention, embeddings and layer norms stay shared and only the feed-forward weights are per domain.

Hand-written because neither transformers nor sentence-transformers offers per-example routing to
copies of an existing block (sentence-transformers' ``Router`` routes between whole module stacks).
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Optional, Union

import torch
from torch import Tensor, nn

from embedkit.errors import ModelError

# (attributes of one layer that together form its feed-forward block), most common first:
# BERT, RoBERTa, XLM-R, ELECTRA, MPNet, DeBERTa: intermediate (up + activation) and output (down,
# dropout, residual LayerNorm); DistilBERT: ffn; others: mlp.
FEED_FORWARD_ATTRIBUTES: tuple[tuple[str, ...], ...] = (("intermediate", "output"), ("ffn",), ("mlp",))
LAYER_LISTS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers")


Route = Union[int, Tensor]
# The route of the forward pass running in this thread (or asyncio task). A context variable rather
# than an attribute of the module, so that threads sharing one model (embedkit's encoding engine runs
# forward passes on several threads) each see their own route.
_ROUTE: ContextVar[Optional[Route]] = ContextVar("embedkit_expert_route", default=None)


@contextlib.contextmanager
def expert_route(route: Route) -> Iterator[None]:
    """Every :class:`RoutedExperts` called inside the block (in this thread) uses ``route``: an ``int``
    (the whole batch goes to that expert) or a ``LongTensor`` of shape ``(batch,)`` (one expert per row)."""
    token = _ROUTE.set(route)
    try:
        yield
    finally:
        _ROUTE.reset(token)


class RoutedExperts(nn.Module):
    """``num_experts`` deep copies of ``block``; each row of the batch runs through its route's copy.

    The route comes from the enclosing :func:`expert_route` block. Every positional input must be
    batch-first; the outputs of the experts are put back in row order. An expert that no row is routed
    to is not called, so it gets no gradient and an optimizer step leaves it untouched. (Gradient
    checkpointing, which reruns the forward pass during backward outside that block, is not supported.)
    """

    def __init__(self, block: nn.Module, num_experts: int):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be at least 1, got {num_experts}")
        self.experts = nn.ModuleList(copy.deepcopy(block) for _ in range(num_experts))

    def forward(self, hidden: Tensor, *rest: Tensor) -> Tensor:
        route = _ROUTE.get()
        if route is None:
            raise RuntimeError("RoutedExperts called without a route; call it through MoETransformer")
        if isinstance(route, int):
            return self.experts[route](hidden, *rest)
        if route.numel() != hidden.size(0):
            raise ValueError(f"route has {route.numel()} entries but the batch has {hidden.size(0)} rows")
        out = None
        for expert in torch.unique(route).tolist():
            rows = (route == expert).nonzero().squeeze(1)
            part = self.experts[expert](hidden.index_select(0, rows), *(r.index_select(0, rows) for r in rest))
            if out is None:
                out = part.new_zeros((hidden.size(0), *part.shape[1:]))
            out = out.index_copy(0, rows, part)  # out-of-place: autograd routes each row's gradient to its expert
        return out


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer layers of a Hugging Face encoder (``encoder.layer`` for BERT-likes)."""
    for dotted in LAYER_LISTS:
        node = model
        for part in dotted.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList) and len(node):
            return node
    raise ModelError(f"{type(model).__name__}: cannot find its transformer layers (looked for "
                     f"{', '.join(LAYER_LISTS)}); mixture of experts needs a BERT-like encoder")


def feed_forward_attributes(layer: nn.Module) -> tuple[str, ...]:
    for names in FEED_FORWARD_ATTRIBUTES:
        if all(isinstance(getattr(layer, name, None), nn.Module) for name in names):
            return names
    raise ModelError(f"{type(layer).__name__}: no feed-forward block found (looked for "
                     f"{' / '.join('+'.join(n) for n in FEED_FORWARD_ATTRIBUTES)})")


def resolve_layers(model: nn.Module, layers: Sequence[int] | None) -> list[int]:
    """Layer indices (negative ones count from the end); None means every layer."""
    count = len(encoder_layers(model))
    if layers is None:
        return list(range(count))
    resolved = []
    for index in layers:
        if not -count <= index < count:
            raise ModelError(f"expert layer {index} does not exist; the encoder has layers 0..{count - 1}")
        resolved.append(index % count)
    return sorted(set(resolved))


def add_experts(model: nn.Module, num_experts: int, layers: Sequence[int] | None = None) -> list[RoutedExperts]:
    """Replace the feed-forward block of each chosen layer by ``num_experts`` copies of it, in place.

    Returns every :class:`RoutedExperts` created (a layer with ``intermediate`` + ``output`` gets two,
    routed together). Each copy starts as an exact copy, so before training the model computes exactly
    what the original did, whatever the route.
    """
    all_layers = encoder_layers(model)
    routed = []
    for index in resolve_layers(model, layers):
        layer = all_layers[index]
        for name in feed_forward_attributes(layer):
            block = getattr(layer, name)
            if isinstance(block, RoutedExperts):
                raise ModelError(f"layer {index} already has experts")
            experts = RoutedExperts(block, num_experts)
            setattr(layer, name, experts)
            routed.append(experts)
    return routed
