"""CCP loss: the formula by hand, per-language candidates, the bank as extra negatives, enqueueing."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from embedkit.losses import CCPLoss, ccp_loss
from embedkit.modules import LanguageMemoryBank


def test_one_direction_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = 0.5
    s = F.normalize(a, dim=-1) @ F.normalize(p, dim=-1).T / t
    expected = (torch.logsumexp(s[0], 0) - s[0, 0] + torch.logsumexp(s[1], 0) - s[1, 1]) / 2
    got = ccp_loss(a, p, torch.zeros(2, dtype=torch.long), None, temperature=t, symmetric=False)
    torch.testing.assert_close(got, expected)


def test_other_languages_are_not_candidates():
    torch.manual_seed(0)
    a, p = torch.randn(4, 3), torch.randn(4, 3)
    mixed = ccp_loss(a, p, torch.tensor([0, 1, 0, 1]), None, symmetric=True)
    separate = (ccp_loss(a[[0, 2]], p[[0, 2]], torch.zeros(2, dtype=torch.long), None) * 2
                + ccp_loss(a[[1, 3]], p[[1, 3]], torch.zeros(2, dtype=torch.long), None) * 2) / 4
    torch.testing.assert_close(mixed, separate)


def test_bank_rows_are_extra_negatives_of_their_language_only():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    bank = LanguageMemoryBank(dim=2, size=4, languages=["en", "de"], views=1)
    bank.enqueue(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    t = 1.0
    got = ccp_loss(a, p, torch.tensor([0]), bank, temperature=t, symmetric=False)
    expected = math.log(math.exp(1.0) + math.exp(0.0)) - 1.0  # the en bank row (cos 0) only
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_loss_module_trains_projection_and_fills_the_bank(tiny_model):
    loss = CCPLoss(tiny_model, memory_bank_size=8, temperature=0.1)
    tiny_model.train()
    columns = [tiny_model.preprocess(["the cat sat", "a dog ran", "birds fly"]),
               tiny_model.preprocess(["on the mat", "in the park", "south in winter"])]
    value = loss(columns, torch.zeros(3, dtype=torch.long))
    value.backward()
    assert torch.isfinite(value)
    assert loss.projection.weight.grad is not None
    assert int(loss.memory.filled[0]) == 3 and loss.memory.get(0, view=1).shape == (3, loss.projection_dim)
    tiny_model.eval()
    loss(columns, None)  # evaluation: no enqueue, running batch-norm statistics
    assert int(loss.memory.filled[0]) == 3
    with pytest.raises(ValueError, match="language ids"):
        loss(columns, torch.tensor([0, 1, 0]))


def test_identity_head_after_calibration_is_the_identity_map(tiny_model):
    from embedkit.models import embedding_dim

    loss = CCPLoss(tiny_model, memory_bank_size=0, projection_init="identity")
    embeddings = torch.randn(64, embedding_dim(tiny_model)) * torch.linspace(0.01, 1, embedding_dim(tiny_model))
    torch.testing.assert_close(loss.projection(embeddings), embeddings)
    loss.calibrate(embeddings)
    loss.batch_norm.train()
    torch.testing.assert_close(loss.project(embeddings, "positive"), embeddings, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(loss.project(embeddings, "anchor"), embeddings, atol=1e-2, rtol=1e-2)  # batch std is biased
    random_head = CCPLoss(tiny_model, memory_bank_size=0)
    random_head.calibrate(embeddings)  # running statistics only: the head standardises
    standardised = random_head.project(embeddings, "positive")
    torch.testing.assert_close(standardised.std(0), torch.ones(standardised.size(1)), atol=1e-3, rtol=1e-3)
    assert loss.get_config_dict()["projection_init"] == "identity"
    with pytest.raises(ValueError, match="projection_init 'identity' needs"):
        CCPLoss(tiny_model, projection_dim=3, projection_init="identity")
    with pytest.raises(ValueError, match="projection_init must be"):
        CCPLoss(tiny_model, projection_init="orthogonal")


def test_same_document_candidates_are_not_negatives():
    torch.manual_seed(0)
    a, p = torch.randn(4, 3), torch.randn(4, 3)
    languages = torch.zeros(4, dtype=torch.long)
    bank = LanguageMemoryBank(dim=3, size=4, languages=["en"], views=2)
    bank.enqueue([torch.randn(2, 3), torch.randn(2, 3)], torch.zeros(2, dtype=torch.long), torch.tensor([7, 0]))
    documents = torch.tensor([0, 0, 1, 2])  # rows 0 and 1 share a document; bank row 1 is from document 0
    got = ccp_loss(a, p, languages, bank, temperature=0.1, symmetric=True, document_ids=documents)
    an, pn = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    bank_p, bank_a = bank.get(0, 0), bank.get(0, 1)
    expected = 0.0
    for i in range(4):
        keep_batch = [j for j in range(4) if j == i or documents[j] != documents[i]]
        keep_bank = [k for k in range(2) if bank.get_documents(0)[k] != documents[i]]
        for x, ys, banked in ((an[i], pn, bank_p), (pn[i], an, bank_a)):
            logits = torch.cat([ys[keep_batch] @ x, banked[keep_bank] @ x]) / 0.1
            expected += (torch.logsumexp(logits, 0) - (ys[i] @ x) / 0.1) / 2
    torch.testing.assert_close(got, expected / 4)
    unmasked = ccp_loss(a, p, languages, bank, temperature=0.1, symmetric=True)
    assert unmasked > got  # masking only removes negatives


def test_loss_module_reads_document_ids_from_labels(tiny_model):
    loss = CCPLoss(tiny_model, memory_bank_size=8, temperature=0.1)
    tiny_model.train()
    columns = [tiny_model.preprocess(["the cat sat", "a dog ran"]), tiny_model.preprocess(["on the mat", "in the park"])]
    loss(columns, torch.tensor([[0, 5], [0, 9]]))
    assert loss.memory.get_documents(0).tolist() == [5, 9]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        loss(columns, torch.zeros(2, 3, dtype=torch.long))


def test_without_batch_norm_the_identity_head_is_the_identity_in_training(tiny_model):
    from embedkit.models import embedding_dim

    loss = CCPLoss(tiny_model, memory_bank_size=4, projection_init="identity", batch_norm=False)
    embeddings = torch.randn(8, embedding_dim(tiny_model)) + 3.0  # a common mean direction survives
    loss.calibrate(embeddings)  # nothing to calibrate
    torch.testing.assert_close(loss.project(embeddings, "anchor"), embeddings)
    assert loss.get_config_dict()["batch_norm"] is False
    tiny_model.train()
    columns = [tiny_model.preprocess(["the cat sat", "a dog ran"]), tiny_model.preprocess(["on the mat", "in the park"])]
    value = loss(columns, None)
    value.backward()
    assert torch.isfinite(value) and int(loss.memory.filled[0]) == 2


def test_candidates_the_guide_ranks_above_the_pair_are_not_negatives():
    torch.manual_seed(1)
    a, p = torch.randn(5, 3), torch.randn(5, 3)
    guide_a, guide_p = torch.randn(5, 3), torch.randn(5, 3)
    bank = LanguageMemoryBank(dim=3, size=4, languages=["en"], views=4)
    bank.enqueue([torch.randn(3, 3) for _ in range(4)], torch.zeros(3, dtype=torch.long))
    got = ccp_loss(a, p, torch.zeros(5, dtype=torch.long), bank, temperature=0.1, guide=(guide_a, guide_p))
    an, pn, gan, gpn = (F.normalize(x, dim=-1) for x in (a, p, guide_a, guide_p))
    expected, masked = 0.0, 0
    for i in range(5):
        pair = gan[i] @ gpn[i]
        for x, ys, bank_ys, gx, gys, bank_gys in ((an[i], pn, bank.get(0, 0), gan[i], gpn, bank.get(0, 2)),
                                                  (pn[i], an, bank.get(0, 1), gpn[i], gan, bank.get(0, 3))):
            candidates, guide_scores = torch.cat([ys, bank_ys]), torch.cat([gys, bank_gys]) @ gx
            keep = [j for j in range(8) if j == i or guide_scores[j] <= pair]
            masked += 8 - len(keep)
            logits = candidates[keep] @ x / 0.1
            expected += (torch.logsumexp(logits, 0) - (ys[i] @ x) / 0.1) / 2
    assert masked > 0  # the case is not vacuous
    torch.testing.assert_close(got, expected / 5)


def test_false_negative_masking_keeps_pre_projection_views_in_the_bank(tiny_model):
    loss = CCPLoss(tiny_model, memory_bank_size=8, temperature=0.1, mask_false_negatives=True)
    tiny_model.train()
    columns = [tiny_model.preprocess(["the cat sat", "a dog ran"]), tiny_model.preprocess(["on the mat", "in the park"])]
    loss(columns, None).backward()
    assert loss.memory.views == 4 and int(loss.memory.filled[0]) == 2
    raw = tiny_model.encode(["in the park"], convert_to_tensor=True, normalize_embeddings=True)
    assert torch.isfinite(loss.memory.get(0, view=2)).all() and loss.memory.get(0, view=2).shape[1] == raw.shape[1]
    with pytest.raises(ValueError, match="projection_dim =="):
        CCPLoss(tiny_model, projection_dim=3, mask_false_negatives=True)


def test_keys_replace_the_in_batch_candidates():
    torch.manual_seed(2)
    a, p, key_a, key_p = (torch.randn(3, 4) for _ in range(4))
    got = ccp_loss(a, p, torch.zeros(3, dtype=torch.long), None, temperature=0.2, symmetric=False, keys=(key_a, key_p))
    s = F.normalize(a, dim=-1) @ F.normalize(key_p, dim=-1).T / 0.2
    torch.testing.assert_close(got, F.cross_entropy(s, torch.arange(3)))


def test_momentum_copy_moves_towards_the_model_and_fills_the_bank(tiny_model):
    loss = CCPLoss(tiny_model, memory_bank_size=8, temperature=0.1, momentum=0.75)
    assert all(not p.requires_grad for p in loss.key_model.parameters())
    with torch.no_grad():
        first = next(tiny_model.parameters())
        before = first.clone()
        first.add_(1.0)  # as if the optimiser had stepped
    tiny_model.train()
    columns = [tiny_model.preprocess(["the cat sat", "a dog ran"]), tiny_model.preprocess(["on the mat", "in the park"])]
    value = loss(columns, None)
    value.backward()
    torch.testing.assert_close(next(loss.key_model.parameters()), 0.75 * before + 0.25 * first.detach())
    assert next(loss.key_model.parameters()).grad is None and loss.projection.weight.grad is not None
    keys = loss.embed_keys(columns)  # a second update moves the copy further; the bank holds the first keys
    assert loss.memory.get(0, view=0).shape == keys[1].shape
    assert loss.get_config_dict()["momentum"] == 0.75
    with pytest.raises(ValueError, match="momentum"):
        CCPLoss(tiny_model, momentum=1.0)
