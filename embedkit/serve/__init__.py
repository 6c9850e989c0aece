"""``embedkit serve``: a search and embedding service over embedkit indexes (FastAPI + uvicorn).

Only this package imports FastAPI. The rooms:

- :mod:`~embedkit.serve.config`: the options, typed and checked when loaded;
- :mod:`~embedkit.serve.service`: what a running server holds (indexes, models, writers, locks);
- :mod:`~embedkit.serve.app`: the routes, auth and limits; :mod:`~embedkit.serve.errors` its one error shape;
- :mod:`~embedkit.serve.batcher`: dynamic micro-batching of concurrent encode requests;
- :mod:`~embedkit.serve.state`: a served index and the lock that keeps searches whole during writes;
- :mod:`~embedkit.serve.writer` and :mod:`~embedkit.serve.wal`: the one write path, durable by write-ahead log;
- :mod:`~embedkit.serve.metrics`: Prometheus metrics; :mod:`~embedkit.serve.server`: uvicorn.

See docs/serve.md for the API and the design choices.
"""
from embedkit.serve.config import ServeConfig, make_config, parse_index_arg, read_token
from embedkit.serve.server import run

__all__ = ["ServeConfig", "make_config", "parse_index_arg", "read_token", "run"]
