"""Where data and caches live: ``EMBEDKIT_DATA`` and ``EMBEDKIT_CACHE``.

The data folder never depends on the working directory: unset, ``EMBEDKIT_DATA`` defaults to
``../shared/data`` beside the checkout embedkit runs from (the folder that holds ``pyproject.toml`` and
``embedkit/``), so ``embedkit eval sts --data stsb`` finds the same files from any folder. An installed
(non-checkout) package defaults to ``$XDG_DATA_HOME/embedkit/data`` (``~/.local/share/embedkit/data``).
"""
from __future__ import annotations

import os
from pathlib import Path

from embedkit.errors import DataError

CHECKOUT = Path(__file__).resolve().parents[1]


def _in_checkout() -> bool:
    return (CHECKOUT / "pyproject.toml").is_file()


def data_dir() -> Path:
    """``EMBEDKIT_DATA``, else the default described in the module docstring (an absolute path)."""
    env = os.environ.get("EMBEDKIT_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if _in_checkout():
        return (CHECKOUT.parent / "shared" / "data").resolve()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "embedkit" / "data"


def data_dir_origin() -> str:
    """Why :func:`data_dir` is what it is, for messages and ``embedkit data list``."""
    if os.environ.get("EMBEDKIT_DATA"):
        return "from EMBEDKIT_DATA"
    if _in_checkout():
        return f"EMBEDKIT_DATA unset: ../shared/data beside the checkout {CHECKOUT}"
    return "EMBEDKIT_DATA unset: the default data folder of an installed embedkit"


# Everything embedkit writes under EMBEDKIT_CACHE; `embedkit cache info|clear` go by this list (a test checks
# that every folder the code puts under ``cache_dir()`` is here).
CACHE_PARTS = {
    "embeddings": "embeddings of evaluated, indexed and mined texts",
    "mteb": "mteb's own cache",
    "mined": "mined hard negatives",
    "sentences": "documents split into sentences (CCP)",
    "rankgen-negatives": "LM-generated RankGen negatives",
    "lms": "de-quantised GGUF language models",
    "onnx": "ONNX exports of models",
    "openvino": "OpenVINO exports of models",
    "auto": "the backend `--backend auto` chose per model and CPU",
    "demo-index": "the index `embedkit demo` builds",
    "ray-work": "texts handed to a Ray cluster (`eval retrieval --ray`)",
}


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
        where = "" if p.is_absolute() else f" (looked in {Path.cwd()} and in EMBEDKIT_DATA={data_dir()}, {data_dir_origin()})"
        hint = "" if p.is_absolute() else "; `embedkit data list` shows the datasets `embedkit data get` downloads"
        raise DataError(f"no such file or folder{where}{hint}", path=path)
    return candidate
