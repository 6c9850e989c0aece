"""Bad clients get the right status and one JSON error line; nothing they send reaches a file path."""
from __future__ import annotations

import os

import pytest

from embedkit.index.storage import GENERATION_PREFIXES
from serve.servehelpers import TOKEN, Server, error_of

DOC = {"id": "bad-1", "text": "text"}


def _post(server, path, json=None, **kw):
    return server.post(path, json=json, **kw)


@pytest.mark.parametrize("body, param", [
    ({"query": "q", "k": "5"}, "k"),  # strings are not numbers
    ({"query": 5}, "query"),
    ({"query": "q", "mode": "fuzzy"}, "mode"),
    ({"query": "q", "k": 0}, "k"),
    ({"query": "q", "k": 51}, "k"),  # the server runs with --max-k 50
    ({"query": ""}, "query"),
    ({"k": 3}, "query"),
    ({"query": "q", "unknown": 1}, "unknown"),
    ([1, 2], None),
])
def test_search_schema_violations_are_422(shared_server, body, param):
    response = _post(shared_server, "/search", body)
    assert response.status_code == 422
    assert error_of(response)["param"] == param


def test_malformed_json_is_400(shared_server):
    response = shared_server.post("/search", content=b'{"query": "q", "k": 3', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in error_of(response)["message"]
    response = shared_server.post("/documents", content=b"\xff\xfe", token=TOKEN,
                                  headers={"content-type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("path, body, param", [
    ("/search", {"query": "q" * 2001}, "query"),  # --max-text-chars 2000
    ("/v1/embeddings", {"model": "main", "input": ["t"] * 9}, "input"),  # --max-texts 8
    ("/v1/embeddings", {"model": "main", "input": ["ok", "y" * 2001]}, "input[1]"),
    ("/documents", {"documents": [{"id": f"n{i}", "text": "t"} for i in range(9)]}, "documents.text"),
    ("/documents", {"documents": [{"id": "n", "text": "t", "title": "x" * 2001}]}, "documents.title[0]"),
])
def test_over_the_limits_is_413(shared_server, path, body, param):
    response = shared_server.post(path, json=body, token=TOKEN)
    assert response.status_code == 413 and error_of(response)["param"] == param


def test_body_over_the_size_limit_is_413_before_parsing(shared_server):
    big = b'{"query": "' + b"a" * 70_000 + b'"}'  # --max-body-bytes 65536
    response = shared_server.post("/search", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "65536 bytes" in error_of(response)["message"]


def test_unknown_index_model_document_and_route_are_404(shared_server):
    assert error_of(_post(shared_server, "/search", {"query": "q", "index": "nope"}))["param"] == "index"
    assert _post(shared_server, "/v1/embeddings", {"model": "gpt-4", "input": "q"}).status_code == 404
    assert _post(shared_server, "/documents", {"index": "nope", "documents": [DOC]}, token=TOKEN).status_code == 404
    assert shared_server.get("/documents/never-added").status_code == 404
    assert shared_server.delete("/documents/never-added", token=TOKEN).status_code == 404
    for response in (shared_server.get("/nowhere"), shared_server.get("/v2/embeddings")):
        assert response.status_code == 404 and error_of(response)["type"] == "not_found_error"
    assert error_of(shared_server.client.put("/search", json={}))["code"] == 405


def test_writes_need_the_bearer_token(shared_server):
    missing = _post(shared_server, "/documents", {"documents": [DOC]})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    error_of(missing)
    for wrong in (TOKEN[:-1] + "x", TOKEN + "x", "short", TOKEN.upper()):
        response = shared_server.post("/documents", json={"documents": [DOC]},
                                      headers={"Authorization": f"Bearer {wrong}"})
        assert response.status_code == 403 and error_of(response)["message"] == "wrong token", wrong
    basic = shared_server.post("/documents", json={"documents": [DOC]}, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert shared_server.delete("/documents/d1").status_code == 401
    assert shared_server.delete("/documents/d1", token="wrong-token-wrong").status_code == 403
    assert shared_server.get("/documents/d1").status_code == 200  # the refused delete changed nothing
    assert shared_server.get("/documents/bad-1").status_code == 404


def test_auth_is_checked_before_the_body(shared_server):
    response = shared_server.post("/documents", json={"documents": "not a list"}, token="wrong-token-wrong")
    assert response.status_code == 403


def test_bad_documents_are_422(shared_server):
    cases = [
        ({"documents": []}, "documents"),
        ({"documents": [{"id": "", "text": "t"}]}, "documents.0.id"),
        ({"documents": [{"id": "x", "text": 3}]}, "documents.0.text"),
        ({"documents": [{"id": "dup", "text": "a"}, {"id": "dup", "text": "b"}]}, "documents"),
        ({"documents": [DOC], "mode": "replace"}, "mode"),
        ({"index": "chunks", "documents": [{"id": "looks#3", "text": "t"}]}, "documents"),
    ]
    for body, param in cases:
        response = shared_server.post("/documents", json=body, token=TOKEN)
        assert response.status_code == 422 and error_of(response)["param"] == param, (body, response.text)


def test_request_values_never_become_paths(shared_server):
    before = {name: sorted(os.listdir(folder)) for name, folder in shared_server.folders.items()}
    hostile = ["../../etc/passwd", "/etc/passwd", "..", "main/../chunks", "%2e%2e%2fmain", "meta.json"]
    for name in hostile:
        assert _post(shared_server, "/search", {"query": "q", "index": name}).status_code == 404
        assert _post(shared_server, "/documents", {"index": name, "documents": [DOC]}, token=TOKEN).status_code == 404
        assert _post(shared_server, "/v1/embeddings", {"model": name, "input": "q"}).status_code == 404
        assert shared_server.get("/documents/d1", params={"index": name}).status_code == 404
        assert shared_server.delete(f"/documents/d1?index={name}", token=TOKEN).status_code == 404
    weird = {"id": "../../../tmp/evil", "text": "an id is data, not a path"}
    assert shared_server.post("/documents", json={"documents": [weird]}, token=TOKEN).status_code == 200
    assert shared_server.get("/documents/../../../tmp/evil").status_code == 404  # normalised by the client
    assert shared_server.get("/documents/..%2F..%2F..%2Ftmp%2Fevil").json()["id"] == weird["id"]
    assert not os.path.exists("/tmp/evil")
    after = {name: sorted(os.listdir(folder)) for name, folder in shared_server.folders.items()}
    for name in before:  # checkpoints add generations of the index's files; nothing else appears
        untagged = {n for n in after[name] if not n.startswith(GENERATION_PREFIXES) and not n.startswith(".meta")}
        assert untagged <= set(before[name]) | {"serve-wal.jsonl", "writer.lock"}, (before, after)


def test_read_only_server_refuses_writes(fresh_index, tmp_path):
    files = sorted(os.listdir(fresh_index))
    with Server([fresh_index], tmp_path / "server.log") as server:
        assert server.get("/health").json()["writes"] is False
        response = server.post("/documents", json={"documents": [DOC]}, token=TOKEN)
        assert response.status_code == 403 and "without --token-file" in error_of(response)["message"]
        assert server.delete("/documents/d1", token=TOKEN).status_code == 403
        assert server.post("/search", json={"query": "guitar"}).status_code == 200
    assert sorted(os.listdir(fresh_index)) == files  # no log, no lock, no save
