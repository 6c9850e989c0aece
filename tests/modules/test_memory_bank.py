"""LanguageMemoryBank: FIFO order and capacity, one queue per language, no gradient into the bank."""
from __future__ import annotations

import pytest
import torch

from embedkit.modules import LanguageMemoryBank


def rows(*values: float) -> torch.Tensor:
    return torch.tensor([[v, -v] for v in values])


def test_queue_keeps_order_and_size():
    bank = LanguageMemoryBank(dim=2, size=4, languages=["en"])
    en = torch.zeros(3, dtype=torch.long)
    bank.enqueue(rows(1, 2, 3), en)
    assert bank.get(0)[:, 0].tolist() == [1, 2, 3]
    bank.enqueue(rows(4, 5, 6), en)  # 1 and 2 drop out, oldest first
    assert bank.get(0)[:, 0].tolist() == [3, 4, 5, 6]
    bank.enqueue(rows(7, 8, 9, 10, 11, 12), torch.zeros(6, dtype=torch.long))  # more rows than the size
    assert bank.get(0)[:, 0].tolist() == [9, 10, 11, 12]


def test_languages_are_kept_apart():
    bank = LanguageMemoryBank(dim=2, size=3, languages=["en", "de"])
    bank.enqueue(rows(1, 2, 3, 4), torch.tensor([0, 1, 0, 1]))
    bank.enqueue(rows(5), torch.tensor([1]))
    assert bank.get(bank.language_id("en"))[:, 0].tolist() == [1, 3]
    assert bank.get(bank.language_id("de"))[:, 0].tolist() == [2, 4, 5]
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        bank.language_id("fr")


def test_views_are_stored_side_by_side():
    bank = LanguageMemoryBank(dim=2, size=4, languages=["en"], views=2)
    bank.enqueue([rows(1, 2), rows(10, 20)], torch.zeros(2, dtype=torch.long))
    assert bank.get(0, view=0)[:, 0].tolist() == [1, 2]
    assert bank.get(0, view=1)[:, 0].tolist() == [10, 20]
    with pytest.raises(ValueError, match="2 view"):
        bank.enqueue(rows(1), torch.zeros(1, dtype=torch.long))


def test_no_gradient_flows_through_the_bank():
    bank = LanguageMemoryBank(dim=2, size=4, languages=["en"])
    x = torch.randn(3, 2, requires_grad=True)
    bank.enqueue(x * 2, torch.zeros(3, dtype=torch.long))
    stored = bank.get(0)
    assert not stored.requires_grad and stored.grad_fn is None
    assert list(dict(bank.named_parameters())) == []  # buffers only: nothing for an optimizer to update
    query = torch.randn(1, 2, requires_grad=True)
    (query @ stored.T).sum().backward()
    assert x.grad is None and query.grad is not None


def test_document_ids_follow_their_rows():
    bank = LanguageMemoryBank(dim=2, size=3, languages=["en", "de"])
    bank.enqueue(rows(1, 2, 3), torch.tensor([0, 1, 0]), torch.tensor([10, 20, 30]))
    bank.enqueue(rows(4, 5), torch.tensor([0, 0]))  # no ids given: -1, and 1 drops out
    assert bank.get(0)[:, 0].tolist() == [3, 4, 5]
    assert bank.get_documents(0).tolist() == [30, -1, -1]
    assert bank.get_documents(1).tolist() == [20]
    with pytest.raises(ValueError, match="document ids"):
        bank.enqueue(rows(6), torch.tensor([0]), torch.tensor([1, 2]))
