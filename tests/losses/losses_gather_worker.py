"""The per-process half of test_gather.py (a module of its own so torch.multiprocessing.spawn can import it)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

ROWS = 8
SPLITS = {"even": [4, 4], "uneven": [3, 5]}
TEMPERATURE, WEIGHT = 0.1, 2.0
MATRYOSHKA_WEIGHTS = [1.0, 2.0]  # at the model's full width and half of it


def matryoshka_dims(model) -> list[int]:
    width = model.get_embedding_dimension()
    return [width, width // 2]
TEXTS = {
    "anchor": [f"anchor sentence number {i} about topic {i % 3}" for i in range(ROWS)],
    "positive": [f"positive text {i} on subject {i % 3}" for i in range(ROWS)],
    "negative": [f"unrelated negative {i} words here" for i in range(ROWS)],
}


def combined_columns() -> list[torch.Tensor]:
    """The whole batch (anchor, positive, negative), identical in every process."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(ROWS, 6, generator=generator) for _ in range(3)]


def run(rank: int, world_size: int, init_file: str, out_dir: str, model_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)  # tiny tensors; see conftest.py
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    from embedkit.losses import CachedInfoNCELoss, InfoNCELoss
    from embedkit.losses.infonce import info_nce_from_columns
    from embedkit.losses.matryoshka import matryoshka_loss
    from embedkit.models import load_model

    results = {}
    for case, counts in SPLITS.items():
        start = sum(counts[:rank])
        local = [c[start: start + counts[rank]].clone().requires_grad_() for c in combined_columns()]
        loss = info_nce_from_columns(local, TEMPERATURE, WEIGHT, symmetric=True, gather_across_devices=True)
        loss.backward()
        results[case] = {"loss": loss.item(), "grads": [t.grad for t in local]}

    model = load_model(model_dir, device="cpu")
    model.eval()  # no dropout: the single-process reference must see the same embeddings
    rows = slice(rank * ROWS // world_size, (rank + 1) * ROWS // world_size)
    for name, loss_fn in [("module", InfoNCELoss(model, TEMPERATURE, WEIGHT, gather_across_devices=True)),
                          ("cached", CachedInfoNCELoss(model, mini_batch_size=3, temperature=TEMPERATURE,
                                                       hard_negative_weight=WEIGHT, gather_across_devices=True)),
                          ("matryoshka", matryoshka_loss(model, InfoNCELoss(model, TEMPERATURE, WEIGHT,
                                                                            gather_across_devices=True),
                                                         matryoshka_dims(model), MATRYOSHKA_WEIGHTS)),
                          ("matryoshka-cached", matryoshka_loss(model, CachedInfoNCELoss(
                              model, mini_batch_size=3, temperature=TEMPERATURE, hard_negative_weight=WEIGHT,
                              gather_across_devices=True), matryoshka_dims(model), MATRYOSHKA_WEIGHTS))]:
        model.zero_grad()
        features = [model.tokenize(TEXTS[column][rows]) for column in ("anchor", "positive", "negative")]
        loss = loss_fn(features, None)
        loss.backward()
        results[name] = {"loss": loss.item(),
                         "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}}
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
