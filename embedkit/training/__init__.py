"""Training embedding models from recipes: ``embedkit train RECIPE.yaml`` and ``embedkit mine``.

- :mod:`~embedkit.training.recipe`: the typed recipe (pydantic) and ``--set`` overrides.
- :mod:`~embedkit.training.trainer`: the ``contrastive`` method over ``SentenceTransformerTrainer``.
- :mod:`~embedkit.training.runners`: methods by name, for trainers of their own.
- :mod:`~embedkit.training.mining`: hard negatives mined with the FAISS index layer.
"""
from embedkit.training.mining import MinedExample, mine_hard_negatives, read_mined, write_mined
from embedkit.training.recipe import Recipe, load_recipe, validate_recipe
from embedkit.training.result import TrainResult
from embedkit.training.runners import get_runner, register_runner, run_recipe, runner_names

__all__ = [
    "MinedExample", "Recipe", "TrainResult", "get_runner", "load_recipe", "mine_hard_negatives", "read_mined",
    "register_runner", "run_recipe", "runner_names", "validate_recipe", "write_mined",
]
