"""The service's options, typed and checked when loaded: which indexes, the limits, batching, durability."""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from embedkit.errors import ConfigError

INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ServedFolder(BaseModel):
    """One index folder and the name clients use for it (``index`` in requests, ``model`` for /v1/embeddings)."""

    model_config = ConfigDict(frozen=True)
    name: str
    folder: Path

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not INDEX_NAME.match(name):
            raise ValueError(f"index name {name!r}: use letters, digits, '_', '.', '-' (at most 64, not starting "
                             "with a punctuation mark)")
        return name


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    indexes: list[ServedFolder] = Field(min_length=1)
    token: str | None = Field(default=None, repr=False)  # None: writes are refused (403)
    device: str | None = None
    # limits (see docs/serve.md); a request beyond one is refused whole, nothing is half-done
    max_body_bytes: int = Field(default=2 * 2**20, ge=1024)
    max_texts: int = Field(default=256, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_k: int = Field(default=100, ge=1)
    # dynamic micro-batching of encode requests
    max_batch: int = Field(default=32, ge=1)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    encode_workers: int | None = Field(default=None, ge=1)  # default: one per usable CPU
    # durability and sharing the folder (embedkit.serve.writer): the write-ahead log is folded into the
    # index folder (a checkpoint, which lets the folder's writer lock go) past this size or this long
    # after the first unsaved write
    checkpoint_bytes: int = Field(default=64 * 2**20, ge=1)
    checkpoint_seconds: float = Field(default=1.0, gt=0, le=86400)
    lock_wait: float = Field(default=5.0, ge=0, le=3600)  # a write waits this long for another writer: 503
    poll_seconds: float = Field(default=1.0, gt=0, le=3600)  # how often to look for a newer generation

    @model_validator(mode="after")
    def _distinct(self) -> "ServeConfig":
        names = [i.name for i in self.indexes]
        folders = [i.folder.resolve() for i in self.indexes]
        for what, values in (("name", names), ("folder", folders)):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"index {what} served twice: {', '.join(repeated)}")
        return self

    @property
    def writes_enabled(self) -> bool:
        return self.token is not None


def parse_index_arg(text: str) -> ServedFolder:
    """``NAME=DIR`` or ``DIR`` (named after the folder) as given on the command line."""
    name, sep, folder = text.partition("=")
    if not sep:
        folder, name = text, Path(text.rstrip("/")).name
    return _checked(ServedFolder, name=name, folder=Path(folder))


def read_token(path: str | Path) -> str:
    """The bearer token: the file's first line, stripped; refused when empty or shorter than 16 characters."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the token file ({exc.__class__.__name__}: {exc})") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise ConfigError(f"{path}: the token must be at least 16 characters on the first line "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE`)")
    return token


def make_config(**values) -> ServeConfig:
    return _checked(ServeConfig, **values)


def _checked(model: type[BaseModel], **values):
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}") from None
