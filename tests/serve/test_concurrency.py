"""Searches during writes see whole writes; concurrent encodes share forward passes (micro-batching)."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from serve.servehelpers import TOKEN

IDS = [f"atomic-{j}" for j in range(5)]


def test_searches_during_upserts_see_the_old_or_the_new_state(shared_server):
    """A writer re-upserts the same 5 documents, round after round, each round's texts carrying the
    token ``roundN``. A search for any round's token must find all 5 documents (that round is the
    current state) or none (it was replaced), never some: a partial state would show 1 to 4."""
    rounds = 12
    current = {"round": -1}
    problems: list[str] = []
    done = threading.Event()

    def write() -> None:
        try:
            for r in range(rounds):
                docs = [{"id": i, "text": f"atomic document {j} round{r}"} for j, i in enumerate(IDS)]
                response = shared_server.post("/documents", json={"documents": docs}, token=TOKEN)
                if response.status_code != 200:
                    problems.append(f"upsert {r}: {response.status_code} {response.text}")
                current["round"] = r
        finally:
            done.set()

    def read(mode: str) -> None:
        import httpx

        with httpx.Client(base_url=shared_server.base, timeout=60) as client:
            last_version, n = -1, 0
            while not done.is_set() or n < 5:
                r = max(current["round"], 0)
                for probe in (r, r - 1):
                    if probe < 0:
                        continue
                    response = client.post("/search", json={"query": f"round{probe}", "mode": mode, "k": 10})
                    if response.status_code != 200:
                        problems.append(f"{mode} search: {response.status_code} {response.text}")
                        return
                    body = response.json()
                    ours = [h for h in body["hits"] if h["id"] in IDS and f"round{probe}" in h["text"]]
                    if mode == "bm25" and len(ours) not in (0, len(IDS)):
                        problems.append(f"partial state: {len(ours)} of {len(IDS)} documents of round {probe}")
                    if body["version"] < last_version:
                        problems.append(f"version went back from {last_version} to {body['version']}")
                    last_version = body["version"]
                n += 1

    readers = [threading.Thread(target=read, args=(m,)) for m in ("bm25", "bm25", "dense", "hybrid")]
    writer = threading.Thread(target=write)
    for t in readers + [writer]:
        t.start()
    for t in readers + [writer]:
        t.join(timeout=300)
    assert not problems, problems[:5]
    final = shared_server.post("/search", json={"query": f"round{rounds - 1}", "mode": "bm25", "k": 10}).json()
    assert {h["id"] for h in final["hits"]} == set(IDS)


# ---------------------------------------------------------------------- the batcher itself, in-process


async def _gather(batcher, model, jobs, backend="torch"):
    return await asyncio.gather(*(batcher.run(model, texts, prompt, backend) for texts, prompt in jobs))


@pytest.mark.parametrize("max_batch, expected_batches", [(64, None), (1, 16)])
def test_micro_batching_groups_concurrent_requests(tiny_model, max_batch, expected_batches):
    from embedkit.encoding import encode
    from embedkit.serve.batcher import MicroBatcher

    sizes = []
    batcher = MicroBatcher(max_batch=max_batch, max_wait=0.2, workers=1,
                           observe_batch=lambda texts, queued, seconds: sizes.append(texts))
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'the weather today'}" for i in range(16)]
    batcher.register(tiny_model)
    batcher.start()
    try:
        results = asyncio.run(_gather(batcher, tiny_model, [([t], "") for t in texts]))
    finally:
        batcher.stop()
    assert sum(sizes) == 16
    if expected_batches is None:
        assert len(sizes) <= 2 and max(sizes) >= 8  # 16 concurrent requests, one or two forward passes
    else:
        assert len(sizes) == expected_batches  # batching off: one forward pass per request
    alone = encode(tiny_model, texts, batch_size=1)
    np.testing.assert_allclose(np.vstack(results), alone, atol=1e-5)  # each request got its own row


def test_micro_batches_never_mix_prompts(tiny_model):
    from embedkit.encoding import encode
    from embedkit.serve.batcher import MicroBatcher

    batcher = MicroBatcher(max_batch=64, max_wait=0.1, workers=2)
    jobs = [(["the same text"], "query: "), (["the same text"], ""), (["other", "texts"], "query: ")]
    batcher.register(tiny_model)
    batcher.start()
    try:
        results = asyncio.run(_gather(batcher, tiny_model, jobs))
    finally:
        batcher.stop()
    for (texts, prompt), got in zip(jobs, results):
        np.testing.assert_allclose(got, encode(tiny_model, texts, prompt=prompt), atol=1e-5)
    assert not np.allclose(results[0], results[1])  # the prompt changed the vector


def test_micro_batches_encode_through_the_index_backend(tiny_model):
    """A served index built through another encoding path (here torch's int8) is queried through it too.
    (One request: int8 quantises activations per batch, so only the same batch gives the same rows.)"""
    from embedkit.encoding import encode
    from embedkit.serve.batcher import MicroBatcher

    batcher = MicroBatcher(max_batch=64, max_wait=0.05, workers=1)
    jobs = [(["a sentence about cats", "another one, about the weather"], "")]
    batcher.register(tiny_model)
    batcher.start()
    try:
        int8 = asyncio.run(_gather(batcher, tiny_model, jobs, backend="int8"))
        exact = asyncio.run(_gather(batcher, tiny_model, jobs))
    finally:
        batcher.stop()
    for (texts, _), got8, got in zip(jobs, int8, exact):
        np.testing.assert_allclose(got8, encode(tiny_model, texts, backend="int8"), atol=1e-5)
        np.testing.assert_allclose(got, encode(tiny_model, texts), atol=1e-5)
        assert not np.allclose(got8, got, atol=1e-6)  # the backend made a difference


def test_workers_encode_at_once_without_sharing_a_tokenizer(tiny_model):
    """Two workers, many one-text batches of different lengths, each followed by a token count on the
    worker (as /v1/embeddings does): a tokenizer shared by the workers has its padding and truncation
    settings changed under it by the other worker and fails or mixes rows (it did, before each worker had
    its own copy of the model; about two runs in three of this test). Every request must get its own
    vectors and token count."""
    from embedkit.encoding import encode
    from embedkit.encoding.bucketing import token_lengths
    from embedkit.serve.batcher import MicroBatcher

    batcher = MicroBatcher(max_batch=2, max_wait=0, workers=2)
    texts = [" ".join(["word"] * (1 + i % 60)) + f" {i}" for i in range(1200)]
    batcher.register(tiny_model)
    batcher.start()

    async def run_all():
        return await asyncio.gather(*(batcher.run(tiny_model, [t], "", then=lambda v, model, t=t: (
            v, int(token_lengths(model, [t])[0]))) for t in texts))

    try:
        results = asyncio.run(run_all())
    finally:
        batcher.stop()
    np.testing.assert_allclose(np.vstack([v for v, _ in results]), encode(tiny_model, texts, batch_size=64), atol=1e-5)
    assert [n for _, n in results] == token_lengths(tiny_model, texts).tolist()


def test_the_batcher_hands_free_heap_pages_back_at_most_once_per_interval(tiny_model, monkeypatch):
    """Under steady load the workers trim the heap now and then (resident memory would otherwise creep
    up as the heap fragments), never after every batch (which would undo the buffer reuse)."""
    import embedkit.serve.batcher as batcher_module
    from embedkit.serve.batcher import MicroBatcher

    trims = []
    monkeypatch.setattr(batcher_module, "release_free_memory", lambda: trims.append(time.monotonic()))
    monkeypatch.setattr(batcher_module, "TRIM_SECONDS", 0.2)
    batches = []
    batcher = MicroBatcher(max_batch=4, max_wait=0.0, workers=2, observe_batch=lambda *_: batches.append(1))
    batcher.register(tiny_model)
    batcher.start()

    async def load(seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(batcher.run(tiny_model, [f"text {i}"]) for i in range(8)))

    try:
        asyncio.run(load(1.0))
    finally:
        batcher.stop()
    assert len(batches) > 20  # many batches ...
    assert 2 <= len(trims) <= 6  # ... about one trim per 0.2 s of them
    assert all(b - a >= 0.2 for a, b in zip(trims, trims[1:]))
