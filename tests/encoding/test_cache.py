"""The chunked embedding cache: misses encode, hits do not, damaged entries are misses."""
from __future__ import annotations

import numpy as np

import embedkit.encoding.cache as cache_module
from embedkit.encoding import EmbeddingCache, cached_encode


def test_hit_miss_and_damaged_entry(tiny_model, texts, monkeypatch, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    calls = []
    real_encode = cache_module.encode
    monkeypatch.setattr(cache_module, "encode", lambda *a, **k: calls.append(1) or real_encode(*a, **k))
    monkeypatch.setattr(cache_module, "CHUNK", 64)

    first = cached_encode(tiny_model, texts, cache=cache)
    assert len(calls) == 3 and cache.info()["entries"] == 3  # 152 texts: chunks of 64, 64, 24
    assert np.array_equal(cached_encode(tiny_model, texts, cache=cache), first)
    assert len(calls) == 3  # every chunk was a hit

    entry = sorted((tmp_path / "cache").rglob("*.npy"))[0]
    entry.write_bytes(b"not an npy file")
    assert np.array_equal(cached_encode(tiny_model, texts, cache=cache), first)
    assert len(calls) == 4  # the damaged chunk alone was encoded again, and rewritten
    assert np.load(entry).shape[1] == 32


def test_prompt_and_normalize_are_part_of_the_key(tiny_model, texts, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    plain = cached_encode(tiny_model, texts, cache=cache)
    prompted = cached_encode(tiny_model, texts, prompt="q: ", cache=cache)
    normalized = cached_encode(tiny_model, texts, normalize=True, cache=cache)
    assert not np.allclose(plain, prompted) and not np.allclose(plain, normalized)
    assert cache.info()["entries"] == 3


class RecordingBar:
    """Stands in for tqdm: keeps what a bar was told."""
    made: list["RecordingBar"] = []

    def __init__(self, total=None, initial=0, disable=False, **kwargs):
        self.total, self.initial, self.disable, self.kwargs, self.updates = total, initial, disable, kwargs, []
        RecordingBar.made.append(self)

    def update(self, n):
        self.updates.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_progress_moves_per_batch_and_counts_cached_texts_from_the_start(tiny_model, texts, monkeypatch, tmp_path):
    """Not per 2,048-text chunk (a SciFact bar sat at 0/5,183 for minutes); cache hits do not inflate the rate."""
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    monkeypatch.setattr(cache_module, "CHUNK", 64)
    cache = EmbeddingCache(tmp_path / "cache")

    def bar_of(**kwargs) -> RecordingBar:  # the first bar a call makes is cached_encode's own
        RecordingBar.made = []
        cached_encode(tiny_model, kwargs.pop("texts"), cache=cache, batch_size=8, **kwargs)
        return RecordingBar.made[0]

    bar = bar_of(texts=texts[:128], show_progress=True)  # two chunks, now cached
    assert bar.initial == 0 and set(bar.updates) == {8} and sum(bar.updates) == 128
    bar = bar_of(texts=texts, show_progress=True)
    assert (bar.total, bar.initial, sum(bar.updates)) == (152, 128, 24) and max(bar.updates) == 8
    assert bar.kwargs["smoothing"] == 0 and not bar.disable
    assert bar_of(texts=texts).disable  # default: no bar when nothing (or little) is left to encode
