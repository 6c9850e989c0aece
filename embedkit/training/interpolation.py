"""Weight-space interpolation between the base model and its fine-tuned copy (WiSE-FT).

Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022): the model whose weights are
``(1 - alpha) * base + alpha * fine_tuned`` often keeps most of the fine-tuning gain on the target task
while losing less of the base model's quality elsewhere (here: SciFact retrieval against STS-B).
sentence-transformers has no such helper, so it is a few lines over the two state dicts. ``alpha`` is a
hyperparameter like any other: choose it on dev sets (:func:`evaluate_alphas`), then set it in the
recipe (``wise_ft_alpha``) so the final run saves the interpolated model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from embedkit.errors import ConfigError


def interpolate_weights(base, tuned, alpha: float) -> None:
    """Set ``tuned``'s weights to ``(1 - alpha) * base + alpha * tuned`` in place (both SentenceTransformers
    of the same architecture; integer buffers such as position ids are kept as they are)."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"wise_ft_alpha must be in [0, 1], got {alpha}")
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    if base_state.keys() != tuned_state.keys():
        missing = sorted(base_state.keys() ^ tuned_state.keys())[:3]
        raise ConfigError(f"cannot interpolate models of different architectures (e.g. {', '.join(missing)})")
    merged = {}
    for key, value in tuned_state.items():
        other = base_state[key]
        if other.shape != value.shape:
            raise ConfigError(f"cannot interpolate {key}: shapes {tuple(other.shape)} and {tuple(value.shape)}")
        merged[key] = torch.lerp(other.to(value), value, alpha) if value.is_floating_point() else value
    tuned.load_state_dict(merged)


def evaluate_alphas(run_dir: str | Path, alphas: Sequence[float], batch_size: int | None = None) -> dict:
    """``{alpha: {eval set: metrics}}`` for a finished ``embedkit train`` run: its base model interpolated
    with the trained weights at each ``alpha``, scored on the recipe's selection sets (``eval.sets``, dev;
    never its test sets)."""
    from embedkit.models import load_model
    from embedkit.training.evaluation import evaluate_sets, load_eval_sets
    from embedkit.training.recipe import load_recipe

    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml", ["eval.final=false"])
    sets = load_eval_sets(recipe.eval, seed=recipe.seed)
    base = load_model(recipe.model)
    results = {}
    for alpha in alphas:
        model = load_model(str(run_dir))
        interpolate_weights(base, model, alpha)
        results[f"{alpha:g}"] = evaluate_sets(model, sets, batch_size or recipe.eval.batch_size)
    return results
