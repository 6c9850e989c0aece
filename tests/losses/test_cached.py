"""GradCache InfoNCE: same gradients as the uncached loss, dropout replayed, memory bounded by the mini-batch."""
from __future__ import annotations

import pytest
import torch
from sentence_transformers.base.losses.gradcache import _create_minibatch, _minibatch_ranges

from embedkit.losses import CachedInfoNCELoss, InfoNCELoss
from embedkit.losses.infonce import info_nce

ANCHORS = [f"anchor sentence {i} about topic {i % 4} with some words" for i in range(10)]
POSITIVES = [f"a positive text {i} on subject {i % 4}" for i in range(10)]
NEGATIVES = [f"an unrelated negative {i} sentence here" for i in range(10)]


def _features(model, columns):
    return [model.tokenize(column) for column in columns]


def _parameter_grads(model, loss_fn, columns):
    model.zero_grad()
    loss = loss_fn(_features(model, columns), None)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("columns", [(ANCHORS, POSITIVES), (ANCHORS, POSITIVES, NEGATIVES)],
                         ids=["pairs", "hard-negatives"])
@pytest.mark.parametrize("options", [{}, {"hard_negative_weight": 2.0, "symmetric": True}], ids=["plain", "options"])
def test_cached_gradients_equal_uncached(tiny_model, columns, options):
    tiny_model.eval()  # no dropout, so the two losses see identical embeddings
    value, grads = _parameter_grads(tiny_model, InfoNCELoss(tiny_model, **options), columns)
    cached_value, cached_grads = _parameter_grads(tiny_model, CachedInfoNCELoss(tiny_model, 3, **options), columns)
    assert cached_value == pytest.approx(value, abs=1e-5)
    assert grads.keys() == cached_grads.keys() and grads
    for name in grads:
        assert torch.allclose(cached_grads[name], grads[name], atol=1e-5), name


def test_dropout_is_replayed_in_the_second_pass(tiny_model):
    """With dropout on, the cached gradients equal those of one differentiable pass that draws the same masks.

    The reference embeds the same mini-batches, in the same order, from the same seed, with a graph. If the
    second (graph-building) pass of the cached loss drew fresh dropout masks, its gradients would differ.
    """
    tiny_model.train()
    columns = (ANCHORS, POSITIVES, NEGATIVES)

    torch.manual_seed(123)
    tiny_model.zero_grad()
    embeddings = []
    for features in _features(tiny_model, columns):
        ranges = _minibatch_ranges(features, 4)
        embeddings.append(torch.cat([tiny_model(_create_minibatch(features, b, e))["sentence_embedding"]
                                     for b, e in ranges]))
    info_nce(embeddings[0], embeddings[1], embeddings[2:]).backward()
    reference = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}

    torch.manual_seed(123)
    _, cached = _parameter_grads(tiny_model, CachedInfoNCELoss(tiny_model, mini_batch_size=4), columns)
    for name in reference:
        assert torch.allclose(cached[name], reference[name], atol=1e-5), name

    torch.manual_seed(7)  # sanity: dropout really is active, another seed gives other gradients
    _, other = _parameter_grads(tiny_model, CachedInfoNCELoss(tiny_model, mini_batch_size=4), columns)
    assert any(not torch.allclose(other[n], reference[n], atol=1e-5) for n in reference)


class _SavedActivations:
    """Bytes of tensors saved for backward that are alive at once: an activation-memory measure.

    Saved parameters (e.g. a linear layer's weight) are skipped: they alias memory that exists anyway.
    """

    def __init__(self, model):
        self.parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.live = self.peak = 0

    def pack(self, tensor):
        if tensor.untyped_storage().data_ptr() in self.parameters:
            return tensor
        return _Tracked(tensor, self)

    @staticmethod
    def unpack(packed):
        return packed.tensor if isinstance(packed, _Tracked) else packed


class _Tracked:
    def __init__(self, tensor, tracker):
        self.tensor, self.tracker, self.size = tensor, tracker, tensor.numel() * tensor.element_size()
        tracker.live += self.size
        tracker.peak = max(tracker.peak, tracker.live)

    def __del__(self):
        self.tracker.live -= self.size


def peak_saved_bytes(model, loss_fn, columns):
    """Peak bytes of activations saved for backward during one forward + backward of ``loss_fn``."""
    tracker = _SavedActivations(model)
    model.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
        loss_fn(_features(model, columns), None).backward()
    return tracker.peak


def test_activation_memory_is_bounded_by_the_mini_batch(tiny_model):
    tiny_model.eval()
    texts = [f"sentence number {i} with exactly the same length" for i in range(32)]
    columns = (texts, texts)
    rows_with_graph = []
    hook = tiny_model[0].register_forward_pre_hook(
        lambda module, args: rows_with_graph.append(args[0]["input_ids"].size(0)) if torch.is_grad_enabled() else None)
    cached_peak = peak_saved_bytes(tiny_model, CachedInfoNCELoss(tiny_model, mini_batch_size=4), columns)
    hook.remove()
    full_peak = peak_saved_bytes(tiny_model, InfoNCELoss(tiny_model), columns)
    mini_peak = peak_saved_bytes(tiny_model, InfoNCELoss(tiny_model), (texts[:4], texts[:4]))
    assert max(rows_with_graph) == 4  # no forward pass with a graph ever sees more than a mini-batch
    assert cached_peak <= 1.1 * mini_peak  # one mini-batch of one column alive at a time
    assert cached_peak < full_peak / 4


def test_bad_mini_batch_size(tiny_model):
    with pytest.raises(ValueError, match="mini_batch_size"):
        CachedInfoNCELoss(tiny_model, mini_batch_size=0)
