"""``embedkit data get``: download a dataset from the Hugging Face hub into ``EMBEDKIT_DATA``, in the layout
the loaders read, verified (rows and checksums, see :mod:`embedkit.data.catalog`) before it is put in place,
with a README that says where it came from.

A folder that is already there and verifies is left alone (so the command also works offline when the data
is present). Without the hub (``HF_HUB_OFFLINE``, or no connection) the command fails at once with one line
that says where to put the files, instead of the hub client's minute of retries.
"""
from __future__ import annotations

import datetime
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from embedkit.data.catalog import CATALOG, GROUPS, DatasetSpec, Part
from embedkit.data.checksum import sha256_file
from embedkit.errors import DataError
from embedkit.paths import data_dir
from embedkit.version import embedkit_version

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
CONNECT_TIMEOUT_S = 10


class Hub:
    """The Hugging Face hub as ``data get`` uses it: whole files of dataset repos, and rows of datasets.
    Everything fetched is noted in ``fetched`` for the provenance README."""

    def __init__(self) -> None:
        self.fetched: list[dict] = []
        self._revisions: dict[str, str] = {}

    def unreachable(self) -> str | None:
        """Why the hub cannot be reached, or None. A TCP connect with a short timeout, so that an offline
        machine hears it in seconds; behind a proxy the download itself is the test."""
        offline = [v for v in OFFLINE_VARS if os.environ.get(v, "").lower() in ("1", "true", "yes", "on")]
        if offline:
            return f"{offline[0]}={os.environ[offline[0]]} is set"
        if any(os.environ.get(v) for v in PROXY_VARS):
            return None
        url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
        return None

    def file(self, repo: str, filename: str) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(repo, filename, repo_type="dataset"))
        except Exception as exc:  # the hub client raises many types; all mean "could not get it"
            raise DataError(f"cannot download {filename} from hub dataset {repo}: {_first_line(exc)}") from None
        self.fetched.append({"repo": repo, "file": filename, "revision": _snapshot_revision(path),
                             "sha256": sha256_file(path), "cached_at": str(path)})
        return path

    def rows(self, repo: str, config: str | None, split: str):
        import datasets

        try:
            rows = datasets.load_dataset(repo, config, split=split)
        except Exception as exc:  # as above
            what = f"{repo}" + (f" config {config}" if config else "") + f" split {split}"
            raise DataError(f"cannot download hub dataset {what}: {_first_line(exc)}") from None
        self.fetched.append({"repo": repo, "config": config, "split": split, "rows": len(rows),
                             "revision": self.revision(repo)})
        return rows

    def revision(self, repo: str) -> str:
        if repo not in self._revisions:
            from huggingface_hub import HfApi

            try:
                self._revisions[repo] = HfApi().dataset_info(repo).sha or "unknown"
            except Exception:  # the revision is provenance, not a condition of the download
                self._revisions[repo] = "unknown"
        return self._revisions[repo]


def _first_line(exc: Exception) -> str:
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _snapshot_revision(path: Path) -> str:
    """The commit of a file in the hub cache (``.../snapshots/<commit>/<file>``)."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else "unknown"


# ------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Fact:
    part: Part
    rows: int
    checksum: str

    @property
    def problem(self) -> str | None:
        if self.rows != self.part.rows:
            return f"{self.part.name}: {self.rows:,} rows, expected {self.part.rows:,}"
        if self.part.checksum is not None and self.checksum != self.part.checksum:
            return f"{self.part.name}: {self.part.kind} {self.checksum}, expected {self.part.checksum}"
        return None


def verify(spec: DatasetSpec, folder: Path) -> list[Fact]:
    """Measure every part of ``folder``; raises DataError at the first wrong row count or checksum."""
    facts = []
    for part in spec.parts:
        rows, checksum = part.measure(folder)
        fact = Fact(part, rows, checksum)
        if fact.problem:
            raise DataError(fact.problem, path=folder)
        facts.append(fact)
    return facts


# ---------------------------------------------------------------------------------------------- get


@dataclass(frozen=True)
class Outcome:
    spec: DatasetSpec
    folder: Path
    downloaded: bool  # False: it was already there and verified
    facts: list[Fact]


def names(requested: list[str]) -> list[str]:
    """Dataset names with groups (``senteval``, ``all``) expanded, in order, each once."""
    out: list[str] = []
    for name in requested:
        key = name.lower()
        if key not in CATALOG and key not in GROUPS:
            raise DataError(f"unknown dataset {name!r}; choose from {', '.join([*CATALOG, *GROUPS])}")
        out += [n for n in GROUPS.get(key, [key]) if n not in out]
    return out


def get_dataset(name: str, root: Path | None = None, hub: Hub | None = None, force: bool = False) -> Outcome:
    """Put dataset ``name`` into ``root`` (default ``EMBEDKIT_DATA``), verified; see the module docstring."""
    spec = CATALOG[name]
    root = Path(root) if root is not None else data_dir()
    target = root / spec.folder
    if target.exists():
        try:
            return Outcome(spec, target, False, verify(spec, target))
        except DataError as exc:
            if not force:
                raise DataError(f"{target} exists but is not a verified copy ({exc}); move it away or pass "
                                "--force to replace it") from None
    hub = hub or Hub()
    reason = hub.unreachable()
    if reason:
        raise DataError(f"cannot download {name}: the Hugging Face hub is unreachable ({reason}). Run "
                        f"`embedkit data get {name}` where the hub is reachable and copy the folder to {target}, "
                        f"or put the files there yourself: {spec.layout}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        spec.build(hub, partial)
        try:
            facts = verify(spec, partial)
        except DataError as exc:
            raise DataError(f"the download of {name} does not verify, nothing was written: {exc}") from None
        (partial / "README.md").write_text(provenance(spec, facts, hub.fetched), encoding="utf-8")
        _replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return Outcome(spec, target, True, facts)


def _replace(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an old ``target`` (``--force``) is moved aside first and then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def provenance(spec: DatasetSpec, facts: list[Fact], fetched: list[dict]) -> str:
    """The folder's README: what it is, where every file came from, and what was verified."""
    when = datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {spec.folder}: {spec.title}", "",
             f"Written by `embedkit data get {spec.name}` (embedkit {embedkit_version()}) on {when}.", "",
             "## Source", f"- {spec.source}", f"- upstream: {spec.origin}", f"- license: {spec.license}", "",
             *([spec.notes, ""] if spec.notes else []), "Fetched:"]
    for item in fetched:
        what = item.get("file") or f"config {item.get('config') or 'default'}, split {item['split']} ({item['rows']:,} rows)"
        extra = f", sha256 {item['sha256']}, cached at {item['cached_at']}" if "sha256" in item else ""
        lines.append(f"- `{item['repo']}` {what}, revision {item['revision']}{extra}")
    lines += ["", "## Files and checks", "",
              "| file | rows | checksum | checked against |", "|---|---|---|---|"]
    for fact in facts:
        pinned = "the pinned reference copy: equal" if fact.part.checksum else "no reference copy (recorded only)"
        lines.append(f"| `{fact.part.name}` | {fact.rows:,} | {fact.part.kind} `{fact.checksum}` | {pinned} |")
    lines += ["", "Rows are counted by embedkit's own loaders. `sha256` is of the file's bytes; `records` is "
                  "`embedkit.data.records_checksum` of the file as loaded (the dataset revision evaluation results "
                  "record). The reference copy is the one every figure in embedkit's documents was measured on.", ""]
    return "\n".join(lines)
