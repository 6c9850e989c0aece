"""Which checkpoint to resume from, when a run may have been killed at any moment.

The HF Trainer writes a checkpoint folder file by file and ``trainer_state.json`` last, so a folder
whose ``trainer_state.json`` is missing or unreadable is a save that was cut short: never resume from it.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from embedkit.errors import ConfigError

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _is_complete(folder: Path) -> bool:
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def checkpoints(out_dir: str | Path) -> list[Path]:
    """Checkpoint folders in ``out_dir``, oldest step first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(out_dir: str | Path) -> Path | None:
    complete = [p for p in checkpoints(out_dir) if _is_complete(p)]
    return complete[-1] if complete else None


def prepare_out_dir(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: start fresh). Removes half-written checkpoints when resuming;
    refuses to start over in a folder that already holds checkpoints unless ``resume``."""
    found = checkpoints(out_dir)
    if not resume:
        if found:
            raise ConfigError(f"{out_dir} already holds checkpoints ({found[-1].name}); pass --resume to continue "
                              "that run, or choose another --out")
        return None
    for folder in found:
        if not _is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
    return last_complete_checkpoint(out_dir)
