"""Texts of varied length for the engine tests (several batches, many distinct token counts)."""
from __future__ import annotations

import random

import pytest

WORDS = ("the cat sat on a mat while embeddings of sentences were computed quickly by small models "
         "under shared machines with noisy neighbours and long abstracts about proteins").split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(n)] + ["", "x"]


@pytest.fixture()
def texts() -> list[str]:
    return make_texts(150)

