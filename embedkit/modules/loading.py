"""Whether a saved model folder may be loaded with ``trust_remote_code=True`` because of embedkit's own modules.

sentence-transformers 6 imports a ``modules.json`` type outside its own namespace only with
``trust_remote_code=True``. A folder whose types are all ``sentence_transformers.*`` or ``embedkit.*``
runs no code but the installed libraries', so embedkit can pass the flag for it (and only for it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TRUSTED_PREFIXES = ("sentence_transformers.", "embedkit.")


def uses_embedkit_modules(folder: str | os.PathLike) -> bool:
    """True when ``folder/modules.json`` names at least one ``embedkit.*`` module and nothing outside
    ``sentence_transformers.*`` / ``embedkit.*``."""
    try:
        entries = json.loads((Path(folder) / "modules.json").read_text(encoding="utf-8"))
        types = [str(entry["type"]) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(t.startswith("embedkit.") for t in types) and all(t.startswith(TRUSTED_PREFIXES) for t in types)
