"""Copies of a model derived for a backend (bf16, int8, an export's session), made once and reused while
the model's weights stand.

A training step bumps the parameters' version counters, so ``weights_version`` changes and the next call
makes a fresh copy; a copy of weights that no longer exist is never served.
"""
from __future__ import annotations

import threading
import weakref

_copies: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {kind: (weights version, copy)}
_copy_lock = threading.Lock()


def weights_version(model) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def derived_copy(model, kind: str, make):
    """``make(model)``, made once per model and ``kind`` and reused while the model's weights stand."""
    version = weights_version(model)
    with _copy_lock:
        cached = _copies.setdefault(model, {}).get(kind)
        if cached is not None and cached[0] == version:
            return cached[1]
        made = make(model)
        _copies[model][kind] = (version, made)
        return made
