"""The ``loss:`` block of a recipe: one typed spec per loss in ``embedkit.losses``, chosen by ``name``.

A spec's fields are exactly the loss's keyword arguments (``build`` passes them through), plus what the
trainer needs to know about it: the data kinds it can train on and whether in-batch negatives require
batches without duplicate texts.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

IN_BATCH_KINDS = frozenset({"sentences", "pairs", "triplets", "nli", "beir"})


class _LossSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    data_kinds: ClassVar[frozenset[str]] = IN_BATCH_KINDS
    in_batch_negatives: ClassVar[bool] = True  # True: batches must not repeat a text (NO_DUPLICATES sampler)

    def loss_class(self) -> type:
        raise NotImplementedError

    def build(self, model):
        return self.loss_class()(model, **self.model_dump(exclude={"name"}))

    def batch_columns(self, columns: dict[str, list]) -> dict[str, list]:
        """The data's columns as this loss reads them (most losses take them as they are)."""
        return columns

    def check_data_kind(self, kind: str, has_hard_negatives: bool) -> None:
        if kind not in self.data_kinds:
            raise ValueError(f"loss {self.name} trains on data.kind {' or '.join(sorted(self.data_kinds))}, "
                             f"not {kind}")


class InfoNCESpec(_LossSpec):
    name: Literal["infonce"]
    temperature: float = Field(0.05, gt=0)
    hard_negative_weight: float = Field(1.0, ge=0)
    symmetric: bool = False
    gather_across_devices: bool = False

    def loss_class(self):
        from embedkit.losses import InfoNCELoss

        return InfoNCELoss


class CachedInfoNCESpec(InfoNCESpec):
    name: Literal["cached-infonce"]
    mini_batch_size: int = Field(32, ge=1)

    def loss_class(self):
        from embedkit.losses import CachedInfoNCELoss

        return CachedInfoNCELoss


class DebCSESpec(_LossSpec):
    name: Literal["debcse"]
    temperature: float = Field(0.05, gt=0)
    max_weight: float = Field(10.0, ge=1)
    l2: float = Field(0.01, ge=0)
    false_negative_margin: Optional[float] = 0.0
    guide: Optional[str] = None  # a frozen model for the semantic similarities ('default', folder, hub id)

    def build(self, model):
        from embedkit.models import load_model

        kwargs = self.model_dump(exclude={"name", "guide"})
        guide = load_model(self.guide, device=str(model.device)) if self.guide else None
        return self.loss_class()(model, guide=guide, **kwargs)

    def loss_class(self):
        from embedkit.losses import DebCSELoss

        return DebCSELoss


class WhitenedCSESpec(_LossSpec):
    name: Literal["whitenedcse"]
    data_kinds: ClassVar[frozenset[str]] = frozenset({"sentences"})
    num_groups: Optional[int] = Field(None, ge=1)  # must divide the embedding dimension; None: per batch
    num_views: int = Field(3, ge=2)
    temperature: float = Field(0.05, gt=0)
    whitening_method: Literal["zca", "cholesky"] = "zca"
    projection: bool = True
    eps: float = Field(1e-5, gt=0)

    def batch_columns(self, columns: dict[str, list]) -> dict[str, list]:
        return {"sentence": columns["anchor"]}  # one column: the loss makes its own views

    def loss_class(self):
        from embedkit.losses import WhitenedCSELoss

        return WhitenedCSELoss


class CoSENTSpec(_LossSpec):
    name: Literal["cosent"]
    data_kinds: ClassVar[frozenset[str]] = frozenset({"sts"})
    in_batch_negatives: ClassVar[bool] = False
    scale: float = Field(20.0, gt=0)

    def loss_class(self):
        from embedkit.losses import CoSENTLoss

        return CoSENTLoss


class MatryoshkaSpec(_LossSpec):
    """``loss: {name: matryoshka, dims: [384, 256, 128, 64], weights: [...], base: {name: infonce, ...}}``:
    the ``base`` loss at every width in ``dims`` (see :mod:`embedkit.losses.matryoshka`)."""

    name: Literal["matryoshka"]
    base: Annotated[Union[InfoNCESpec, CachedInfoNCESpec, DebCSESpec, CoSENTSpec], Field(discriminator="name")]
    dims: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    weights: Optional[list[Annotated[float, Field(gt=0)]]] = None
    n_dims_per_step: int = -1

    @property
    def in_batch_negatives(self) -> bool:  # as the wrapped loss
        return self.base.in_batch_negatives

    def batch_columns(self, columns: dict[str, list]) -> dict[str, list]:
        return self.base.batch_columns(columns)

    def check_data_kind(self, kind: str, has_hard_negatives: bool) -> None:
        self.base.check_data_kind(kind, has_hard_negatives)

    def build(self, model):
        from embedkit.losses.matryoshka import matryoshka_loss

        return matryoshka_loss(model, self.base.build(model), self.dims, self.weights, self.n_dims_per_step)


LossSpec = Annotated[
    Union[InfoNCESpec, CachedInfoNCESpec, DebCSESpec, WhitenedCSESpec, CoSENTSpec, MatryoshkaSpec],
    Field(discriminator="name"),
]
