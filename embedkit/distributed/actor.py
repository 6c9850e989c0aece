"""The stateful encoder that Ray Data runs in each actor: one model per actor, loaded once.

Each call gets part descriptors (one per batch row), reads the part's rows from the input itself,
embeds them with embedkit's engine (length bucketing, one torch thread per batch, ``workers`` batches
in flight on the actor's CPUs, or one stream on its GPU) and writes the part's Parquet shard
atomically. Only a one-row summary per part goes back through Ray's object store (with the model's
fingerprint, so the driver can tell nodes that hold different models), so the driver never holds
embeddings, nor loads the model.
"""
from __future__ import annotations

import socket
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


def resolve_backend_on_node(spec: dict, backend: str) -> str:
    """``backend`` resolved (``auto``: calibrated, cached per machine) on a node like those that encode. It
    runs once per run, so every actor uses the same backend and one run's shards are made alike."""
    from embedkit.encoding.auto import resolve_backend

    model_spec = ModelSpec(**spec)
    with ExitStack() as stack:
        return resolve_backend(model_spec.load(stack), backend, model_spec.device)


@dataclass(frozen=True)
class EncodeJob:
    """Everything an actor needs, sent once when the pool starts. ``identity``: the run's input and
    options; each actor completes it with its model's fingerprint and resolved prompt."""
    spec: ModelSpec
    role: str | None
    prompt: str | None
    batch_size: int
    normalize: bool
    backend: str
    workers: int
    source: dict
    out: str
    identity: dict

    def as_dict(self) -> dict:
        return asdict(self)


SUMMARY_COLUMNS = ("part", "rows", "kept", "fingerprint", "prompt", "dim", "name", "model_source", "node", "error")


class PartEncoder:
    """Ray Data callable class (``map_batches(PartEncoder, ...)``): the model lives as long as the actor.

    A part whose shard an earlier run wrote with the same identity (this actor's model included) is kept,
    not redone: the model's fingerprint is only known where the model is loaded, so the actors decide.

    An embedkit error (a model missing on this node, a bad line in the input) comes back in the summary's
    ``error`` column, as ``"ClassName: message"``: Ray keeps only the text of an exception raised while
    an actor starts, so raising it would lose the one-line message the driver must show.
    """

    def __init__(self, job: dict):
        from embedkit.errors import EmbedkitError

        self.error = ""
        try:
            self._start(job)
        except EmbedkitError as exc:
            self.error = _describe(exc)

    def _start(self, job: dict) -> None:
        from embedkit.distributed.output import identity_hash
        from embedkit.distributed.sources import Source
        from embedkit.encoding.engine import resolve_prompt
        from embedkit.models import model_source_of
        from embedkit.models import model_fingerprint, model_name

        self.job = EncodeJob(**{**job, "spec": ModelSpec(**job["spec"])})
        self.source = Source(**{**self.job.source, "files": tuple(self.job.source["files"])})
        self._stack = ExitStack()
        self.model = self.job.spec.load(self._stack)
        self.prompt = resolve_prompt(self.model, self.job.role, self.job.prompt)
        self.fingerprint = model_fingerprint(self.model)
        self.identity_sha = identity_hash({**self.job.identity, "model": self.fingerprint, "prompt": self.prompt})
        self.dim = self._encode(["width probe"]).shape[1]
        self.facts = (self.fingerprint, self.prompt, self.dim, model_name(self.model),
                      model_source_of(self.model) or self.job.spec.model, socket.gethostname())

    def _encode(self, texts: list[str]) -> np.ndarray:
        from embedkit.encoding import encode

        return encode(self.model, texts, prompt=self.prompt, batch_size=self.job.batch_size,
                      normalize=self.job.normalize, device=self.job.spec.device, backend=self.job.backend,
                      workers=self.job.workers, threads=1, show_progress=False)

    def __call__(self, batch: dict) -> dict:
        import json

        from embedkit.distributed.sources import part_from_dict
        from embedkit.errors import EmbedkitError

        rows = {name: [] for name in SUMMARY_COLUMNS}
        for text in batch["part"]:
            part = part_from_dict(json.loads(text))
            kept, error = False, self.error
            if not error:
                try:
                    kept = self._encode_part(part)
                except EmbedkitError as exc:
                    error = _describe(exc)
            facts = ("", "", 0, "", "", socket.gethostname()) if self.error else self.facts
            for name, value in zip(SUMMARY_COLUMNS, (part.index, part.rows, kept, *facts, error)):
                rows[name].append(value)
        return {name: np.array(values) for name, values in rows.items()}

    def _encode_part(self, part) -> bool:
        """Write the part's shard unless this identity's shard is there already; returns whether it was."""
        from embedkit.distributed.output import finished_part, write_part
        from embedkit.distributed.sources import read_part

        out = Path(self.job.out)
        if finished_part(out, part.index, part.rows, self.identity_sha):
            return True
        ids, texts = read_part(self.source, part)
        write_part(out, part.index, ids, self._encode(texts), self.identity_sha)
        return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc} (on node {socket.gethostname()})"


def raise_reported(error: str) -> None:
    """Raise on the driver the embedkit error an actor reported (see :class:`PartEncoder`)."""
    import embedkit.errors as errors

    name, _, message = error.partition(": ")
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.EmbedkitError)):
        cls = errors.EmbedkitError
    raise cls(message)
