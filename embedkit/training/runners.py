"""Training methods by name, so that methods which do not train through ``SentenceTransformerTrainer``
(generative embedders, mixture-of-experts, ...) plug into ``embedkit train`` with their own loop.

A runner is ``run(recipe, params, out_dir, resume) -> TrainResult``; ``params`` is ``recipe.params``
validated by the runner's pydantic model (``None``: the method takes no params). The built-in
``contrastive`` runner (``embedkit.training.trainer``) is the SentenceTransformerTrainer path.
Most methods train on the recipe's ``data``; a method that names its data in its params (``moe``: one
data set per domain) registers with ``data_in_params=True``, and its recipes may leave ``data`` out. A
method whose training rows are not the rows of its ``data`` (``moe``; ``ccp``: documents -> sentence
pairs) registers ``read_data``, which ``embedkit train --check`` calls to count them.
The modules of the entry-point group ``embedkit.training_methods`` (pyproject.toml; another package can add
its own) are imported on first lookup so their ``register_runner`` calls run: the generative methods live on
a floor above this one, and an entry point lets them register without this module importing them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ValidationError

from embedkit.errors import ConfigError

if TYPE_CHECKING:
    from embedkit.training.recipe import Recipe
    from embedkit.training.result import TrainResult

METHODS_GROUP = "embedkit.training_methods"

RunFn = Callable[["Recipe", Any, Path, bool], "TrainResult"]
ReadDataFn = Callable[["Recipe", Any], "tuple[int, int]"]


@dataclass(frozen=True)
class Runner:
    name: str
    params_model: type[BaseModel] | None
    run: RunFn
    # ``read_data(recipe, params)`` reads the data as the method does (for ``embedkit train --check``) and
    # returns (training examples, evaluation sets), the sets being the ones the method evaluates (moe:
    # its domains' sets, not ``eval.sets``). None: the rows of the recipe's ``data`` and ``eval.sets``.
    read_data: ReadDataFn | None = None
    data_in_params: bool = False  # the method's data is named in its params: ``data`` may be left out


_RUNNERS: dict[str, Runner] = {}
_imported = False


def register_runner(name: str, params_model: type[BaseModel] | None, run_fn: RunFn,
                    read_data: ReadDataFn | None = None, data_in_params: bool = False) -> None:
    """Make ``method: <name>`` available to recipes. Re-registering a name replaces it. ``data_in_params``
    (which needs ``read_data``): the method takes its data from its params, and its recipes may omit ``data``."""
    if data_in_params and read_data is None:
        raise ValueError(f"method {name!r}: data_in_params needs read_data")
    _RUNNERS[name] = Runner(name, params_model, run_fn, read_data, data_in_params)


def _import_runner_modules() -> None:
    global _imported
    if not _imported:
        from importlib.metadata import entry_points

        entries = entry_points(group=METHODS_GROUP)
        if not entries:  # a source tree on sys.path without its package metadata
            raise ConfigError(f"no training methods registered (entry points {METHODS_GROUP!r}): "
                              "install embedkit (pip install -e .) before training")
        for entry in entries:
            entry.load()
        _imported = True


def runner_names() -> list[str]:
    _import_runner_modules()
    return sorted(_RUNNERS)


def get_runner(name: str) -> Runner:
    _import_runner_modules()
    if name not in _RUNNERS:
        raise ConfigError(f"method: unknown method {name!r}; allowed values: {', '.join(runner_names())}")
    return _RUNNERS[name]


def validate_params(recipe: "Recipe") -> Any:
    """``recipe.params`` checked against the method's params model; returns the validated object.
    Also refuses a recipe without ``data`` unless its method reads its data from its params."""
    runner = get_runner(recipe.method)
    if recipe.data is None and not runner.data_in_params:
        raise ConfigError("missing key 'data'")
    if runner.params_model is None:
        if recipe.params:
            raise ConfigError(f"params: method {recipe.method!r} takes no params; "
                              f"unknown key(s): {', '.join(recipe.params)}")
        return None
    try:
        return runner.params_model.model_validate(recipe.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(["params", *map(str, err["loc"])])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(runner.params_model.model_fields)
            raise ConfigError(f"unknown key {key!r}; allowed keys in params: {allowed}") from None
        raise ConfigError(f"{key}: {err['msg']}") from None


def run_recipe(recipe: "Recipe", out_dir: Path, resume: bool = False) -> "TrainResult":
    from embedkit.heap import reuse_freed_memory

    runner = get_runner(recipe.method)
    params = validate_params(recipe)
    with reuse_freed_memory():  # a training step's activations are reallocated every step (see embedkit.heap)
        return runner.run(recipe, params, Path(out_dir), resume)
