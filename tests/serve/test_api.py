"""Every endpoint of a real ``embedkit serve`` process on 127.0.0.1 (tiny seeded model)."""
from __future__ import annotations

import base64

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from embedkit.index import IndexFolder
from helpers import DOCS
from serve.servehelpers import LONG_TEXT, TOKEN, error_of


def _search(server, **body):
    response = server.post("/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_describes_each_index(shared_server):
    health = shared_server.get("/health").json()
    assert health["status"] == "ok" and health["writes"] is True
    assert set(health["indexes"]) == {"main", "chunks"}
    main, chunks = health["indexes"]["main"], health["indexes"]["chunks"]
    assert main["rows"] >= len(DOCS) and main["bm25"] is True and main["chunked"] is False
    assert main["generation"] == IndexFolder.current_generation(shared_server.folders["main"]) or main["unsaved_writes"]
    assert chunks["chunked"] is True and chunks["rows"] > len(DOCS)  # the long document became several chunks


def test_openapi_schema_documents_every_endpoint(shared_server):
    schema = shared_server.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/search", "/v1/embeddings", "/v1/models", "/documents", "/documents/{doc_id}", "/health",
            "/metrics"} <= set(paths)
    assert paths["/documents"]["post"]["security"] and "delete" in paths["/documents/{doc_id}"]
    assert "security" not in paths["/search"]["post"]
    assert set(schema["components"]["schemas"]["SearchRequest"]["properties"]) == {"query", "k", "mode", "index"}


def test_dense_search_finds_a_document_by_its_own_text(shared_server):
    title, text = DOCS["d5"]
    result = _search(shared_server, query=f"{title} {text}", k=3, mode="dense", index="main")
    top = result["hits"][0]
    assert (top["id"], top["title"], top["text"], top["parent_id"]) == ("d5", title, text, None)
    assert top["score"] == pytest.approx(1.0, abs=1e-4)  # the same text, so the same vector (cosine)
    assert len(result["hits"]) == 3 and result["hits"][1]["score"] < top["score"]
    assert result["index"] == "main" and result["mode"] == "dense" and result["took_ms"] > 0


def test_bm25_search_ranks_by_terms(shared_server):
    hits = _search(shared_server, query="sliced onions", k=5, mode="bm25")["hits"]  # default index: main
    assert [h["id"] for h in hits] == ["d2"]  # only d2 holds those terms
    assert hits[0]["text"] == DOCS["d2"][1] and hits[0]["score"] > 0


def test_hybrid_search_fuses_both_rankings(shared_server):
    hits = _search(shared_server, query="Football is a team sport played with a ball.", k=4, mode="hybrid")["hits"]
    assert hits[0]["id"] == "d3"  # first for BM25 and (same text) for dense
    assert hits[0]["score"] == pytest.approx(2 / 61)  # reciprocal rank fusion, k=60, first in both lists
    assert len(hits) == 4


def test_chunked_index_hits_and_documents_name_their_parent(shared_server):
    hits = _search(shared_server, query="pedal driven vehicles with two wheels", k=3, mode="dense",
                   index="chunks")["hits"]
    chunk_hits = [h for h in hits if h["parent_id"] == "long1"]
    assert len(chunk_hits) == 1 and chunk_hits[0]["id"].startswith("long1#")  # one hit per document
    rows = shared_server.get("/documents/long1", params={"index": "chunks"}).json()["rows"]
    assert len(rows) > 1 and [r["id"] for r in rows] == [f"long1#{i}" for i in range(len(rows))]
    assert all(r["parent_id"] == "long1" and r["text"] in LONG_TEXT for r in rows)


def test_embeddings_float_and_base64_are_the_model_vectors(shared_server, tiny_model):
    from embedkit.encoding import encode

    texts = ["A man plays a guitar.", "Stocks fell sharply.", "x"]
    expected = encode(tiny_model, texts)
    floats = shared_server.post("/v1/embeddings", json={"model": "main", "input": texts}).json()
    assert floats["object"] == "list" and floats["model"] == "main"
    assert [d["index"] for d in floats["data"]] == [0, 1, 2]
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > len(texts)
    got = np.array([d["embedding"] for d in floats["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    b64 = shared_server.post("/v1/embeddings", json={"model": "main", "input": texts[0],
                                                     "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, got[0])


def test_models_list_names_the_indexes(shared_server):
    assert [m["id"] for m in shared_server.get("/v1/models").json()["data"]] == ["main", "chunks"]


def test_add_upsert_delete_cycle(shared_server):
    doc = {"id": "cycle-1", "title": "Harp", "text": "The harp is plucked with the fingers."}
    added = shared_server.post("/documents", json={"documents": [doc], "mode": "add"}, token=TOKEN)
    assert added.status_code == 200, added.text
    body = added.json()
    assert (body["added"], body["replaced"], body["rows"], body["index"]) == (1, 0, 1, "main")
    assert _search(shared_server, query="harp fingers", mode="bm25")["hits"][0]["id"] == "cycle-1"

    again = shared_server.post("/documents", json={"documents": [doc], "mode": "add"}, token=TOKEN)
    assert again.status_code == 409 and "cycle-1" in error_of(again)["message"]

    changed = {**doc, "text": "The harp now has pedals."}
    upserted = shared_server.post("/documents", json={"documents": [changed]}, token=TOKEN).json()
    assert (upserted["added"], upserted["replaced"]) == (0, 1) and upserted["version"] > body["version"]
    assert shared_server.get("/documents/cycle-1").json()["rows"][0]["text"] == "The harp now has pedals."
    assert _search(shared_server, query="harp fingers", mode="bm25")["hits"][0]["text"] == "The harp now has pedals."

    deleted = shared_server.delete("/documents/cycle-1", token=TOKEN)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == ["cycle-1"]
    assert shared_server.get("/documents/cycle-1").status_code == 404
    assert all(h["id"] != "cycle-1" for h in _search(shared_server, query="harp pedals", mode="hybrid")["hits"])
    assert shared_server.delete("/documents/cycle-1", token=TOKEN).status_code == 404


def test_upsert_into_chunked_index_replaces_every_chunk(shared_server):
    long_doc = {"id": "cycle-long", "title": "Trains", "text": ("Trains run on rails between stations. " * 8).strip()}
    first = shared_server.post("/documents", json={"index": "chunks", "documents": [long_doc]}, token=TOKEN).json()
    assert first["rows"] > 1
    short = {**long_doc, "text": "Trains are fast."}
    second = shared_server.post("/documents", json={"index": "chunks", "documents": [short]}, token=TOKEN).json()
    assert second["rows"] == 1 and second["count"] == first["count"] - first["rows"] + 1
    rows = shared_server.get("/documents/cycle-long", params={"index": "chunks"}).json()["rows"]
    assert [(r["id"], r["parent_id"]) for r in rows] == [("cycle-long", None)]


def test_metrics_count_requests_and_batches(shared_server):
    before = _metric(shared_server, "embedkit_http_requests", method="POST", route="/search", status="200")
    for _ in range(3):
        _search(shared_server, query="guitar", mode="dense")
    assert _metric(shared_server, "embedkit_http_requests", method="POST", route="/search", status="200") == before + 3
    assert _metric(shared_server, "embedkit_encode_batch_size_count") >= 3
    assert _metric(shared_server, "embedkit_http_request_duration_seconds_count", method="POST", route="/search") >= 3
    assert _metric(shared_server, "embedkit_index_rows", index="main") >= len(DOCS)


def _metric(server, name, **labels) -> float:
    response = server.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in (name, name + "_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_search_page_is_plain_html(shared_server):
    page = shared_server.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<form" in page.text and 'id="mode"' in page.text and 'fetch("search"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
