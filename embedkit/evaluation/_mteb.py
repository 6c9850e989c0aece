"""Import mteb with its cache redirected under EMBEDKIT_CACHE (a bare ``import mteb`` creates ~/.cache/mteb)."""
from __future__ import annotations

import os

from embedkit.paths import cache_dir


def import_mteb():
    os.environ.setdefault("MTEB_CACHE", str(cache_dir() / "mteb"))
    import mteb

    return mteb
