"""Shared by the encoding tests."""
from __future__ import annotations

import numpy as np


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two equally shaped embedding arrays."""
    return float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
