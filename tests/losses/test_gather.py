"""Gathered InfoNCE over 2 processes (gloo, CPU) equals the single-process loss on the combined batch.

Values: the mean over processes of the returned losses equals the combined loss. Gradients: DDP averages
parameter gradients over the W processes, so the gradient each process gets for its own rows, divided
by W, must equal the combined loss's gradient for those rows (checked for the input embeddings, and
for the model parameters with the plain and the cached loss, each also inside the Matryoshka wrapper).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import losses_gather_worker as worker  # noqa: E402

from embedkit.losses import InfoNCELoss  # noqa: E402
from embedkit.losses.gather import all_gather_with_grad, gather_columns  # noqa: E402
from embedkit.losses.infonce import info_nce  # noqa: E402
from embedkit.losses.matryoshka import matryoshka_loss  # noqa: E402

WORLD = 2


@pytest.fixture(scope="module")
def rank_results(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gather")
    mp.spawn(worker.run, args=(WORLD, str(out / "init"), str(out), str(tiny_model_dir)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", sorted(worker.SPLITS))
def test_gathered_values_and_input_gradients_match_combined_batch(rank_results, case):
    combined = [c.clone().requires_grad_() for c in worker.combined_columns()]
    loss = info_nce(combined[0], combined[1], [combined[2]], worker.TEMPERATURE, worker.WEIGHT, symmetric=True)
    loss.backward()
    values = [r[case]["loss"] for r in rank_results]
    assert sum(values) / WORLD == pytest.approx(loss.item(), abs=1e-5)
    counts = worker.SPLITS[case]
    for rank, result in enumerate(rank_results):
        start = sum(counts[:rank])
        for column, grad in enumerate(result[case]["grads"]):
            expected = combined[column].grad[start: start + counts[rank]]
            assert torch.allclose(grad / WORLD, expected, atol=1e-6), (case, rank, column)


@pytest.mark.parametrize("name", ["module", "cached", "matryoshka", "matryoshka-cached"])
def test_gathered_model_gradients_match_combined_batch(rank_results, tiny_model, name):
    tiny_model.eval()
    features = [tiny_model.tokenize(worker.TEXTS[c]) for c in ("anchor", "positive", "negative")]
    reference = InfoNCELoss(tiny_model, worker.TEMPERATURE, worker.WEIGHT)
    if name.startswith("matryoshka"):  # the plain loss at each width, weighted: the gathered ones must agree
        reference = matryoshka_loss(tiny_model, reference, worker.matryoshka_dims(tiny_model), worker.MATRYOSHKA_WEIGHTS)
    loss = reference(features, None)
    loss.backward()
    assert sum(r[name]["loss"] for r in rank_results) / WORLD == pytest.approx(loss.item(), abs=1e-5)
    for param_name, param in tiny_model.named_parameters():
        if param.grad is None:
            continue
        averaged = sum(r[name]["grads"][param_name] for r in rank_results) / WORLD  # what DDP does
        assert torch.allclose(averaged, param.grad, atol=1e-5), param_name


def test_not_distributed_is_a_no_op():
    x = torch.randn(3, 4, requires_grad=True)
    gathered, rows = all_gather_with_grad(x)
    assert gathered is x and rows == slice(0, 3)
    columns, rows, world = gather_columns([x, x * 2])
    assert world == 1 and rows == slice(0, 3) and columns[0] is x
    with pytest.raises(ValueError, match="same number of rows"):
        gather_columns([x, x[:2]])
