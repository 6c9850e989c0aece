"""Measure the activation memory of CachedInfoNCELoss at batch 1024 against InfoNCELoss at small batches.

Run from the repository root (real default model, max length 32, one torch thread; minutes on a CPU):

    HF_HUB_OFFLINE=1 .venv/bin/python tests/losses/measure_cached_memory.py

Prints the peak bytes of activations saved for backward (see ``test_cached.peak_saved_bytes``) during
one forward + backward, for (anchor, positive) batches of random 24-word sentences.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_cached import peak_saved_bytes  # noqa: E402

from embedkit.losses import CachedInfoNCELoss, InfoNCELoss  # noqa: E402
from embedkit.models import load_model  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    model = load_model(None, device="cpu")
    model.max_seq_length = 32
    model.train()
    rng = random.Random(0)
    words = "the a cat dog sun rain city river model data paper method result table small large new old".split()
    texts = [" ".join(rng.choice(words) for _ in range(24)) for _ in range(1024)]
    runs = [("InfoNCELoss", InfoNCELoss(model), 32), ("InfoNCELoss", InfoNCELoss(model), 128),
            ("CachedInfoNCELoss(mini_batch_size=32)", CachedInfoNCELoss(model, mini_batch_size=32), 1024)]
    for name, loss, rows in runs:
        start = time.time()
        peak = peak_saved_bytes(model, loss, (texts[:rows], texts[:rows]))
        print(f"{name:38s} batch {rows:5d}: peak saved activations {peak / 2**20:7.1f} MiB "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
