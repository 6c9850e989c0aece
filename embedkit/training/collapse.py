"""Stop a run whose sentence embeddings collapse (every input mapped to nearly the same direction).

Contrastive training without labels can find the trivial solution (CCP's paper reports that it
happens easily); the loss then keeps decreasing or plateaus while every embedding becomes the same
vector. The signal watched here is the spread of the batch's unit-normalised embeddings,
``1 - ||mean of the unit vectors||^2`` (the trace of their covariance): 1 for embeddings spread in all
directions, 0 when they all coincide. A forward hook records it for every training forward pass;
when the mean over a step stays below ``threshold`` for ``patience`` steps in a row, training stops
without saving and :meth:`CollapseGuard.check` raises :class:`CollapseError`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from embedkit.errors import EmbedkitError


class CollapseError(EmbedkitError):
    """The embeddings collapsed during training."""


def embedding_spread(embeddings: torch.Tensor) -> float:
    """``1 - ||mean(unit rows)||^2`` of a ``(batch, dim)`` tensor: the total variance of the unit vectors."""
    unit = F.normalize(embeddings.detach().float(), dim=-1)
    return float(1.0 - unit.mean(dim=0).pow(2).sum())


class CollapseGuard(TrainerCallback):
    def __init__(self, model: torch.nn.Module, threshold: float = 0.05, patience: int = 3):
        if not 0 <= threshold < 1 or patience < 1:
            raise ValueError("threshold must be in [0, 1) and patience >= 1")
        self.threshold, self.patience = threshold, patience
        self.values: list[float] = []
        self.low_steps = 0
        self.history: list[tuple[int, float]] = []  # (step, mean spread) of every step
        self.stopped_at: int | None = None
        model.register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        embedding = output.get("sentence_embedding") if isinstance(output, dict) else None
        if module.training and isinstance(embedding, torch.Tensor) and embedding.dim() == 2 and embedding.size(0) > 1:
            self.values.append(embedding_spread(embedding))

    def on_step_end(self, args, state, control, **kwargs):
        if not self.values:
            return control
        spread = sum(self.values) / len(self.values)
        self.values.clear()
        self.history.append((state.global_step, spread))
        self.low_steps = self.low_steps + 1 if spread < self.threshold else 0
        if self.low_steps >= self.patience:
            self.stopped_at = state.global_step
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False
        return control

    def check(self) -> None:
        if self.stopped_at is None:
            return
        spread = self.history[-1][1]
        raise CollapseError(
            f"embeddings collapsed: their spread (1 - |mean unit embedding|^2) was {spread:.4f}, below "
            f"{self.threshold} for {self.patience} steps in a row, at step {self.stopped_at}; stopped without "
            "saving. Lower learning_rate, raise the temperature, or enlarge the memory bank / batch")
