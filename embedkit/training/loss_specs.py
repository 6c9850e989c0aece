"""The ``loss:`` block of a recipe: one typed spec per loss in ``embedkit.losses``, chosen by ``name``.

A spec's fields are exactly the loss's keyword arguments (``build`` passes them through), plus what the
trainer needs to know about it: the data kinds it can train on and whether in-batch negatives require
batches without duplicate texts.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

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
    data_kinds: ClassVar[frozenset[str]] = frozenset({"sentences", "pairs"})
    temperature: float = Field(0.05, gt=0)

    def loss_class(self):
        from embedkit.losses import DebCSELoss

        return DebCSELoss


class WhitenedCSESpec(_LossSpec):
    name: Literal["whitenedcse"]
    data_kinds: ClassVar[frozenset[str]] = frozenset({"sentences", "pairs"})
    temperature: float = Field(0.05, gt=0)

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


LossSpec = Annotated[
    Union[InfoNCESpec, CachedInfoNCESpec, DebCSESpec, WhitenedCSESpec, CoSENTSpec],
    Field(discriminator="name"),
]
