"""What a running server holds: the served indexes, their writers and locks, the batcher, the metrics.

Opening a service loads every index folder (FAISS and BM25 sides from one generation) and its model
(each model once, however many indexes share it), and folds in a write-ahead log a crashed server left
behind. Each index has an :class:`~embedkit.serve.writer.IndexWriter`, which keeps it in step with its
folder (newer generations saved by other writers) and, when the server has a token, writes it.
"""
from __future__ import annotations

import copy
import logging
from contextlib import ExitStack

from embedkit.encoding import resolve_prompt
from embedkit.errors import IndexError_
from embedkit.index import IndexFolder
from embedkit.index.chunking import Chunker
from embedkit.serve.batcher import MicroBatcher
from embedkit.serve.config import ServeConfig, ServedFolder
from embedkit.serve.errors import ApiError
from embedkit.serve.metrics import Metrics
from embedkit.serve.state import ServedIndex
from embedkit.serve.writer import IndexWriter, WriterOptions

log = logging.getLogger("embedkit.serve")


class Service:
    def __init__(self, config: ServeConfig, indexes: dict[str, ServedIndex], writers: dict[str, IndexWriter],
                 metrics: Metrics):
        self.config, self.indexes, self.writers, self.metrics = config, indexes, writers, metrics
        self.batcher = MicroBatcher(config.max_batch, config.max_wait_ms / 1000, config.encode_workers,
                                    observe_batch=metrics.observe_batch)
        for served in indexes.values():
            self.batcher.register(served.model)

    @classmethod
    def open(cls, config: ServeConfig) -> "Service":
        metrics = Metrics()
        options = WriterOptions(config.checkpoint_bytes, config.checkpoint_seconds, config.lock_wait,
                                config.poll_seconds)
        opened = ExitStack()  # writers to close if a later index fails to open
        indexes: dict[str, ServedIndex] = {}
        writers: dict[str, IndexWriter] = {}
        models: dict[tuple, object] = {}
        try:
            for spec in config.indexes:
                served = _load(spec, config.device, models)
                writer = IndexWriter(served, spec.folder, options, metrics.observe_commit)
                opened.callback(writer.close)
                if replayed := writer.open():
                    log.info("index %s: replayed %d logged change(s) and saved a checkpoint", spec.name, replayed)
                indexes[spec.name], writers[spec.name] = served, writer
        except BaseException:
            opened.close()
            raise
        opened.pop_all()  # from here on, stop() closes them
        return cls(config, indexes, writers, metrics)

    async def start(self) -> None:
        self.batcher.start()
        for writer in self.writers.values():
            await writer.start()

    async def stop(self) -> None:
        """Finish queued writes, checkpoint, release the folders' locks, stop the encoders."""
        try:
            for writer in self.writers.values():
                await writer.stop()
        finally:
            self.batcher.stop()

    # ------------------------------------------------------------------ lookups (names never touch paths)

    def index(self, name: str | None) -> ServedIndex:
        if name is None:
            return next(iter(self.indexes.values()))
        try:
            return self.indexes[name]
        except KeyError:
            raise ApiError(404, f"no index named {name!r} (served: {', '.join(self.indexes)})", "index") from None

    def by_model(self, name: str) -> ServedIndex:
        """The index a /v1/embeddings ``model`` names: an index name, or the name of a served model."""
        if name in self.indexes:
            return self.indexes[name]
        for served in self.indexes.values():
            if served.dense.model_name == name:
                return served
        raise ApiError(404, f"the model {name!r} does not exist here; use an index name "
                            f"({', '.join(self.indexes)}) or a served model's name", "model")

    def writer(self, served: ServedIndex) -> IndexWriter:
        if not self.config.writes_enabled:
            raise ApiError(403, "writes are disabled: the server was started without --token-file")
        return self.writers[served.name]


def _load(spec: ServedFolder, device: str | None, models: dict) -> ServedIndex:
    from embedkit.models import load_model, model_fingerprint, model_name

    folder = IndexFolder.load(spec.folder)
    dense = folder.index
    if dense.model_source is None:
        raise IndexError_(f"{spec.folder}: the index records no loadable model ({dense.model_name or 'unknown'}); "
                          "rebuild it with `embedkit index build --model ...`")
    build = dense.build_params
    key = (dense.model_source, build.get("max_seq_length"), build.get("truncate_dim"))
    if key not in models:  # --dim at build time: the queries are truncated the same way
        models[key] = load_model(dense.model_source, device=device, max_seq_length=build.get("max_seq_length"),
                                 dim=build.get("truncate_dim"))
    model = models[key]
    fingerprint = model_fingerprint(model)
    dense.check_model(fingerprint, model_name(model))
    chunker = None
    if build.get("chunk_tokens"):
        chunker = Chunker(model, build["chunk_tokens"], build.get("chunk_overlap") or 32)
        chunker.tokenizer = copy.deepcopy(chunker.tokenizer)
    return ServedIndex(spec.name, folder, model, fingerprint, query_prompt=resolve_prompt(model, "query"),
                       document_prompt=resolve_prompt(model, "document", build.get("document_prompt")),
                       chunker=chunker)
