"""A training recipe: one typed, validated YAML file that says everything about a run.

Loading goes YAML -> dict -> ``--set`` overrides -> pydantic validation. Every failure becomes one
``ConfigError`` line that names the key (dotted, e.g. ``loss.temperature``) and the allowed keys or values.
"""
from __future__ import annotations

import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from embedkit.errors import ConfigError
from embedkit.paths import resolve_data_path
from embedkit.training.loss_specs import LossSpec


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class MiningSpec(StrictModel):
    """Hard negatives mined with the index layer before training (cached; see ``embedkit.training.mining``)."""

    model: Optional[str] = None  # None: the recipe's base model
    range: str = "10:60"  # rank window start:end (0-based, end exclusive) after dropping labelled-relevant docs
    num_negatives: int = Field(1, ge=1)
    sampling: Literal["top", "random"] = "random"
    batch_size: int = Field(64, ge=1)

    @field_validator("range")
    @classmethod
    def _range(cls, value: str) -> str:
        parse_range(value)
        return value

    @property
    def window(self) -> tuple[int, int]:
        return parse_range(self.range)


def parse_range(text: str) -> tuple[int, int]:
    """``"10:60"`` -> ``(10, 60)``; refuses anything but ``start:end`` with ``0 <= start < end``."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not match or int(match.group(1)) >= int(match.group(2)):
        raise ValueError(f"range must be START:END with 0 <= START < END, got {text!r}")
    return int(match.group(1)), int(match.group(2))


class DebCSESamplingSpec(StrictModel):
    """DebCSE's inverse-propensity sampling of training pairs over a sentence corpus (``embedkit.training.debcse``)."""

    encoder: Optional[str] = None  # embeds the corpus for neighbours and semantic similarity; None: the base model
    neighbours: int = Field(64, ge=1)  # nearest sentences per sentence considered as candidates
    positive_threshold: float = Field(0.8, gt=-1, le=1)  # cosine at or above: candidate positive
    negative_threshold: float = Field(0.5, ge=-1, lt=1)  # cosine at or below: candidate negative
    trim: float = Field(0.1, ge=0, lt=0.5)  # draw only pairs with trim <= propensity <= 1 - trim
    max_weight: float = Field(20.0, ge=1)  # cap on the inverse-propensity weights
    rows: Optional[int] = Field(None, ge=1)  # rows drawn (None: one per sentence)
    batch_size: int = Field(64, ge=1)  # encoding batch


DataKind = Literal["sentences", "pairs", "triplets", "nli", "sts", "beir"]


class DataSpec(StrictModel):
    """Training data. ``path`` is relative to ``EMBEDKIT_DATA`` unless it exists as given or is absolute."""

    kind: DataKind
    path: str
    split: Optional[str] = None  # sts: train/dev/test; beir: the qrels split (default train)
    limit: Optional[int] = Field(None, ge=1)  # keep the first N examples
    hard_negatives: Optional[MiningSpec] = None  # beir only
    debcse: Optional[DebCSESamplingSpec] = None  # sentences only: rows become (anchor, positive, negative)

    @model_validator(mode="after")
    def _kind_options(self) -> "DataSpec":
        if self.kind in ("sts", "beir") and self.split is None:
            self.split = "train"
        if self.hard_negatives is not None and self.kind != "beir":
            raise ValueError(f"hard_negatives is only for kind beir, not {self.kind}")
        if self.debcse is not None and self.kind != "sentences":
            raise ValueError(f"debcse sampling is only for kind sentences, not {self.kind}")
        return self

    def resolved_path(self) -> Path:
        return resolve_data_path(self.path)


class EvalSet(StrictModel):
    """One evaluation: an STS file (Spearman) or a BEIR collection (nDCG@10)."""

    kind: Literal["sts", "beir"]
    path: str
    split: str = "dev"
    name: Optional[str] = None  # default: "<folder>-<split>"
    during: bool = True  # also run every ``eval.steps`` during training (False: only before and after)
    max_queries: Optional[int] = Field(None, ge=1)  # beir: a seeded subset of the queries
    max_documents: Optional[int] = Field(None, ge=1)  # beir: judged docs of the kept queries + others up to N

    @model_validator(mode="after")
    def _defaults(self) -> "EvalSet":
        if self.name is None:
            self.name = f"{Path(self.path).name}-{self.split}"
        if self.kind == "sts" and (self.max_queries or self.max_documents):
            raise ValueError("max_queries/max_documents are only for kind beir")
        return self


TEST_SPLIT = "test"


class EvalSpec(StrictModel):
    """What a run evaluates. Choose on dev, report test once: ``sets`` are the sets a run is judged and
    chosen by (dev splits; a ``test`` split is refused here), ``test_sets`` are scored only in the final run
    of a recipe (``final: true``, e.g. ``--set eval.final=true``), before and after training, never during."""

    sets: list[EvalSet] = []
    test_sets: list[EvalSet] = []
    final: bool = False  # also score ``test_sets``: the one run whose test figures are reported
    steps: Optional[int] = Field(None, ge=1)  # evaluate the ``during`` sets every N steps (None: never during)
    before: bool = True  # evaluate the base model first, for the model card's before/after table
    batch_size: int = Field(64, ge=1)
    max_seq_length: Optional[int] = Field(None, ge=1)  # None: the base model's own (training length is separate)

    @model_validator(mode="after")
    def _dev_and_test(self) -> "EvalSpec":
        for n, item in enumerate(self.sets):
            if item.split == TEST_SPLIT:
                raise ValueError(f"sets.{n} ({item.name}): a test split is scored only in the final run; "
                                 "move it to eval.test_sets (scored with --set eval.final=true) and select on dev")
        names = [s.name for s in self.sets + self.test_sets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"evaluation set names must differ; {', '.join(repeated)} repeats (set name: ...)")
        return self

    def active_sets(self) -> list[EvalSet]:
        """``sets``, then ``test_sets`` (never during training) when the run is final."""
        tests = [s.model_copy(update={"during": False}) for s in self.test_sets] if self.final else []
        return [*self.sets, *tests]


class Recipe(StrictModel):
    name: Optional[str] = None  # default: the recipe file's stem
    description: str = ""
    model: str = "default"  # 'default', a model folder, or a hub id
    method: str = "contrastive"  # a registered runner (embedkit.training.runners)
    params: dict[str, Any] = {}  # the runner's own parameters, validated by the runner
    data: Optional[DataSpec] = None  # required unless the method reads its data from its params (moe)
    loss: Optional[LossSpec] = None
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    warmup_steps: int = Field(0, ge=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: Optional[int] = Field(None, ge=1)  # overrides epochs
    max_seq_length: Optional[int] = Field(None, ge=1)  # training only; None: the model's own
    max_grad_norm: float = Field(1.0, ge=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    seed: int = 42
    # WiSE-FT: after training, weights become (1 - a) * base + a * trained (embedkit.training.interpolation)
    wise_ft_alpha: Optional[float] = Field(None, ge=0, le=1)
    save_steps: int = Field(500, ge=1)
    save_total_limit: Optional[int] = Field(2, ge=1)
    logging_steps: int = Field(10, ge=1)
    eval: EvalSpec = EvalSpec()

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        if self.warmup_ratio and self.warmup_steps:
            raise ValueError("give warmup_ratio or warmup_steps, not both")
        if self.wise_ft_alpha is not None and self.method != "contrastive":
            raise ValueError(f"wise_ft_alpha is supported by method contrastive only, not {self.method}")
        if self.method == "contrastive":
            if self.loss is None:
                raise ValueError("method contrastive needs a loss")
            if self.data is not None:  # no data at all is refused with the method (runners.validate_params)
                self.loss.check_data_kind(self.data.kind, bool(self.data.hard_negatives))
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------- loading


class _RecipeLoader(yaml.SafeLoader):
    """YAML with YAML 1.2 numbers: ``10:60`` stays a string (YAML 1.1 reads it as the base-60 number 660)
    and ``3e-5`` is a float (YAML 1.1 wants ``3.0e-5``)."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_RecipeLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."))


def read_yaml(text: str):
    return yaml.load(text, Loader=_RecipeLoader)


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read ``path``, apply ``--set key=value`` overrides, validate. Any problem raises one ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = read_yaml(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the "
                          "recipe as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:  # one line: PyYAML's messages span several, with a context snippet
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else (
            text.count("\n", 0, exc.position) + 1 if isinstance(getattr(exc, "position", None), int) else None)
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        where = f", line {line}" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {' '.join(str(problem).split())}") from None
    except (RecursionError, ValueError) as exc:  # PyYAML: deep nesting, escapes past U+10FFFF (chr() refuses)
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    for item in overrides or []:
        apply_override(raw, item)
    return validate_recipe(raw, source=str(path), overrides=overrides or [])


def validate_recipe(raw: dict, source: str = "recipe", overrides: list[str] = ()) -> Recipe:
    """Validate a recipe mapping; a problem with a key that a ``--set`` item wrote names that item, not ``source``."""
    try:
        _refuse_non_finite(raw, source)
    except RecursionError:
        raise ConfigError(f"{source}: not a recipe (nested too deeply)") from None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{_blame(exc, source, overrides)}: {_one_line(exc)}") from None
    from embedkit.training.runners import validate_params

    try:
        validate_params(recipe)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return recipe


def _refuse_non_finite(node: Any, source: str, key: str = "") -> None:
    """No NaN or infinity anywhere in a recipe (``.inf`` and ``.nan`` are YAML floats that would otherwise
    pass ``gt=0``-style bounds, or reach a runner's own parameters unchecked)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for name, value in items:
        dotted = f"{key}.{name}" if key else str(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {dotted}: must be a finite number (got {value})")
        _refuse_non_finite(value, source, dotted)


def apply_override(raw: dict, item: str) -> None:
    """``"loss.temperature=0.05"`` -> ``raw["loss"]["temperature"] = 0.05``; values are YAML scalars."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set loss.temperature=0.05")
    try:
        value = read_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} has {len(node)} entries; "
                                  f"{part!r} is not an index 0..{len(node) - 1}")
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a section")
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


# ------------------------------------------------------------------------------- one-line error messages


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    shown, allowed = _describe_location(err["loc"])
    key = ".".join(shown)
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}; allowed keys{_at(shown[:-1])}: {', '.join(allowed)}"
    if err["type"] == "union_tag_invalid":
        field = err["ctx"]["discriminator"].strip("'")
        return f"{'.'.join([*shown, field])}: unknown value {err['ctx']['tag']!r}; allowed values: {err['ctx']['expected_tags']}"
    if err["type"] == "missing":
        return f"missing key {key!r}"
    message = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    got = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r})"
    extra = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{key + ': ' if key else ''}{message}{got}{extra}"


def _blame(exc: ValidationError, source: str, overrides: list[str]) -> str:
    """``--set ITEM`` when the failing key is one an override wrote (or lies inside or above it), else ``source``."""
    shown, _ = _describe_location(exc.errors()[0]["loc"])
    for item in reversed(overrides):  # the last one to touch a key is what the recipe holds
        key = item.partition("=")[0].strip().split(".")
        common = min(len(key), len(shown))
        if shown and key[:common] == shown[:common]:
            return f"--set {item}"
    return source


def _at(parent: list[str]) -> str:
    return f" in {'.'.join(parent)}" if parent else ""


def _describe_location(loc: tuple) -> tuple[list[str], list[str]]:
    """The user-facing dotted key for a pydantic error location, and the allowed keys at its parent.

    Discriminated-union tags (``('loss', 'infonce', 'x')``) are not keys the user wrote, so they are
    used to pick the union member and then dropped from the displayed key.
    """
    shown: list[str] = []
    annotation: Any = Recipe
    allowed: list[str] = list(Recipe.model_fields)
    for part in loc:
        model = _as_model(annotation)
        members = _union_members(annotation) if model is None else []
        if model is not None and part in model.model_fields:
            allowed, annotation = list(model.model_fields), model.model_fields[part].annotation
            shown.append(part)
        elif members and isinstance(part, str):  # a discriminator tag: pick the member, show nothing
            annotation = next((m for m in members if _tag(m) == part), None)
            allowed = list(annotation.model_fields) if annotation is not None else allowed
        elif isinstance(part, int):  # a list index
            args = typing.get_args(_strip(annotation))
            annotation = args[0] if args else None
            shown.append(str(part))
        else:  # the unknown key itself
            allowed = list(model.model_fields) if model is not None else allowed
            annotation = None
            shown.append(str(part))
    return shown, allowed


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def _as_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [m for m in typing.get_args(annotation) if _as_model(m) is not None]
    return []


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("name")
    args = typing.get_args(field.annotation) if field is not None else ()
    return args[0] if args else None
