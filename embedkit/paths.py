"""Where data and caches live: ``EMBEDKIT_DATA`` and ``EMBEDKIT_CACHE``."""
from __future__ import annotations

import os
from pathlib import Path

from embedkit.errors import DataError


def data_dir() -> Path:
    """``EMBEDKIT_DATA``, else ``../shared/data`` (relative to the working directory) when it exists."""
    env = os.environ.get("EMBEDKIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path("../shared/data").resolve()


def cache_dir() -> Path:
    """``EMBEDKIT_CACHE``, else ``~/.cache/embedkit``."""
    env = os.environ.get("EMBEDKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "embedkit"


def resolve_data_path(path: str | os.PathLike, must_exist: bool = True) -> Path:
    """A path as given when it exists (or is absolute), else relative to ``EMBEDKIT_DATA``."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        candidate = p
    else:
        candidate = data_dir() / p
    if must_exist and not candidate.exists():
        raise DataError(f"no such file or folder (looked in . and EMBEDKIT_DATA={data_dir()})", path=path)
    return candidate
