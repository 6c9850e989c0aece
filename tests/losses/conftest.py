"""Loss tests run torch on one thread: their tensors are tiny, and on a shared 2-core machine the
intra-op thread pool spends far more time waiting for a core than computing (measured 100x slower)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
