"""Import mteb with its cache redirected under EMBEDKIT_CACHE (a bare ``import mteb`` creates ~/.cache/mteb)."""
from __future__ import annotations

import contextlib
import os

from embedkit.paths import cache_dir


def import_mteb():
    os.environ.setdefault("MTEB_CACHE", str(cache_dir() / "mteb"))
    import mteb

    return mteb


# Given to every mteb evaluation: mteb's own bars ("Searching corpus chunks") would nest around embedkit's
# encode bar and fill a log with cursor-movement escape codes; embedkit's bar already shows the work.
QUIET_ENCODE_KWARGS = {"show_progress_bar": False}


@contextlib.contextmanager
def no_datasets_bars():
    """mteb maps its corpora through ``datasets``, which draws a bar per map ("Standardizing text corpus
    format"): switched off while mteb evaluates, restored after."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
