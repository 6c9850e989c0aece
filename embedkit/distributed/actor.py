"""The stateful encoder that Ray Data runs in each actor: one model per actor, loaded once.

Each call gets part descriptors (one per batch row), reads the part's rows from the input itself,
embeds them with embedkit's engine (length bucketing, one torch thread per batch, ``workers`` batches
in flight on the actor's CPUs, or one stream on its GPU) and writes the part's Parquet shard
atomically. Only a one-row summary per part goes back through Ray's object store, so the driver never
holds embeddings.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """What every actor loads: :func:`embedkit.models.load_model` arguments plus MoE routing."""
    model: str = "default"
    device: str | None = None
    max_seq_length: int | None = None
    domain: str | None = None

    def load(self, stack: ExitStack):
        from embedkit.models import load_model
        from embedkit.modules import routed

        model = load_model(self.model, device=self.device, max_seq_length=self.max_seq_length)
        stack.enter_context(routed(model, self.domain))
        return model


@dataclass(frozen=True)
class ModelFacts:
    fingerprint: str
    prompt: str
    dim: int
    name: str
    source: str | None


def probe_model(spec: ModelSpec, role: str | None, prompt: str | None, normalize: bool, backend: str) -> ModelFacts:
    """Load the model once where the actors will (a Ray task) and return what the run's identity needs."""
    from embedkit.encoding import encode
    from embedkit.index.build import model_source_of
    from embedkit.models import model_fingerprint, model_name
    from embedkit.encoding.engine import resolve_prompt

    with ExitStack() as stack:
        model = spec.load(stack)
        full_prompt = resolve_prompt(model, role, prompt)
        dim = encode(model, ["width probe"], prompt=full_prompt, normalize=normalize, backend=backend,
                     show_progress=False, workers=1, threads=1).shape[1]
        return ModelFacts(model_fingerprint(model), full_prompt, int(dim), model_name(model),
                          model_source_of(model) or spec.model)


@dataclass(frozen=True)
class EncodeJob:
    """Everything an actor needs, sent once when the pool starts."""
    spec: ModelSpec
    fingerprint: str
    prompt: str
    batch_size: int
    normalize: bool
    backend: str
    workers: int
    source: dict
    out: str
    identity_sha: str

    def as_dict(self) -> dict:
        return asdict(self)


class PartEncoder:
    """Ray Data callable class (``map_batches(PartEncoder, ...)``): the model lives as long as the actor."""

    def __init__(self, job: dict):
        from embedkit.distributed.sources import Source
        from embedkit.errors import ModelError
        from embedkit.models import model_fingerprint

        self.job = EncodeJob(**{**job, "spec": ModelSpec(**job["spec"])})
        self.source = Source(**{**self.job.source, "files": tuple(self.job.source["files"])})
        self._stack = ExitStack()
        self.model = self.job.spec.load(self._stack)
        found = model_fingerprint(self.model)
        if found != self.job.fingerprint:  # e.g. a model folder that differs between machines
            raise ModelError(f"model {self.job.spec.model!r} on this node has fingerprint {found}, the run "
                             f"expects {self.job.fingerprint}; every node must hold the same model")

    def __call__(self, batch: dict) -> dict:
        import json

        from embedkit.distributed.output import write_part
        from embedkit.distributed.sources import part_from_dict, read_part
        from embedkit.encoding import encode

        done, rows = [], []
        for text in batch["part"]:
            part = part_from_dict(json.loads(text))
            ids, texts = read_part(self.source, part)
            embeddings = encode(self.model, texts, prompt=self.job.prompt, batch_size=self.job.batch_size,
                                normalize=self.job.normalize, device=self.job.spec.device, backend=self.job.backend,
                                workers=self.job.workers, threads=1, show_progress=False)
            write_part(Path(self.job.out), part.index, ids, embeddings, self.job.identity_sha)
            done.append(part.index)
            rows.append(len(ids))
        return {"part": np.array(done, dtype=np.int64), "rows": np.array(rows, dtype=np.int64)}
