"""Index folders for the service tests (tiny seeded model) and one shared server over two of them.

The shared server serves ``main`` (whole documents, with BM25) and ``chunks`` (a chunked index), with a
token and small limits so the limit tests need small bodies. Tests that write use ids of their own, so
they do not depend on each other's order. Tests that kill or restart a server start their own.
"""
from __future__ import annotations

import shutil
import signal

import pytest

from helpers import DOCS
from serve.servehelpers import LONG_TEXT, STARTED, TOKEN, Server, build_index

CHUNK_DOCS = {**DOCS, "long1": ("Bicycles", LONG_TEXT)}
LIMITS = ["--max-texts", "8", "--max-text-chars", "2000", "--max-body-bytes", "65536", "--max-k", "50"]


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test():
    started = len(STARTED)
    yield
    for server in STARTED[started:]:
        server.kill()
    del STARTED[started:]


@pytest.fixture(scope="session")
def index_templates(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-indexes")
    return {"main": build_index(tiny_model_dir, root / "main", DOCS),
            "chunks": build_index(tiny_model_dir, root / "chunks", CHUNK_DOCS, chunk_tokens=16)}


@pytest.fixture()
def fresh_index(index_templates, tmp_path):
    """A private copy of the ``main`` index folder (for tests that start, kill and restart servers)."""
    return shutil.copytree(index_templates["main"], tmp_path / "main")


@pytest.fixture(scope="session")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(scope="session")
def shared_server(index_templates, token_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("shared-server")
    folders = {name: shutil.copytree(path, root / name) for name, path in index_templates.items()}
    server = Server([f"main={folders['main']}", f"chunks={folders['chunks']}", "--token-file", token_file, *LIMITS],
                    root / "server.log").start()
    server.folders = folders
    STARTED.remove(server)  # lives for the session, stopped below
    yield server
    assert server.stop() == -signal.SIGTERM, server.log_tail()  # uvicorn re-raises the signal once shut down
