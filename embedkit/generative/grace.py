"""GRACE encoders (Sun et al., 2025, "GRACE: Generative Representation Learning via Contrastive Policy
Optimization"): a causal LM (with a LoRA adapter) writes a short rationale for each input, and the
embedding is the mean of its last-layer hidden states.

Which positions are pooled is ``GraceSettings.pooling``:

- ``input_and_rationale`` (default, as in the paper, which pools the hidden states of the input
  together with the rationale it generated): the input text's tokens and the rationale's tokens. The
  instruction/chat-template tokens around the text are left out: in a causal LM they come first and
  are identical for every input, so they would only add a constant to every embedding.
- ``rationale``: the rationale's tokens only (the input text's when a rationale is empty).

Encoding decodes greedily, so an encoder is deterministic. A GRACE folder holds
``embedkit_grace.json`` (the settings, including the base LM) and ``adapter/`` (the peft LoRA
adapter); ``embedkit.models.load_model`` recognises the marker, and the loaded encoder answers the
sentence-transformers calls embedkit's encoding engine makes (``encode``, ``prompts``,
``max_seq_length``, ``state_dict``, ``get_sentence_embedding_dimension``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedkit.errors import ModelError
from embedkit.generative.lm import CausalLM, load_causal_lm
from embedkit.generative.lm_encoder import LMTextEncoder
from embedkit.generative.rationale import generate_rollouts, pool

GRACE_MARKER = "embedkit_grace.json"
ADAPTER_DIR = "adapter"
DEFAULT_INSTRUCTION = "In one short sentence, state the topic and main claim of this text."


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: Optional[list[str]] = None  # None: peft's default for the architecture (q_proj, v_proj for Llama)


class GraceSettings(BaseModel):
    """Everything that defines a GRACE encoder besides its weights."""

    model_config = ConfigDict(extra="forbid")

    base_lm: str = "default"  # 'default' (packaged SmolLM2-135M-Instruct), a causal LM folder, .gguf, or hub id
    instruction: str = DEFAULT_INSTRUCTION
    max_input_tokens: int = Field(128, ge=1)
    max_rationale_tokens: int = Field(24, ge=1)
    pooling: Literal["input_and_rationale", "rationale"] = "input_and_rationale"
    lora: LoraSettings = LoraSettings()


class GraceEncoder(LMTextEncoder):
    """A policy LM used as a text encoder (see the module docstring)."""

    def __init__(self, lm: CausalLM, settings: GraceSettings, name: str = "grace"):
        super().__init__(lm, name)
        self.settings = settings

    @property
    def max_seq_length(self) -> int:
        return self.settings.max_input_tokens

    def state_dict(self):
        """Marked with the policy's settings (instruction, lengths, pooling), which change its embeddings."""
        settings = json.dumps(self.settings.model_dump(mode="json"), sort_keys=True).encode()
        return self._state_dict_marked("embedkit_grace_settings", settings)

    def rollouts(self, texts: Sequence[str], **sampling):
        s = self.settings
        return generate_rollouts(self.lm, texts, instruction=s.instruction, max_input_tokens=s.max_input_tokens,
                                 max_rationale_tokens=s.max_rationale_tokens, **sampling)

    def encode_with_rationales(self, sentences: Sequence[str], prompt: str | None = None, batch_size: int = 16,
                               show_progress_bar: bool | None = None, normalize_embeddings: bool = False
                               ) -> tuple[np.ndarray, list[str]]:
        """Embeddings (float32, one row per text, input order) and the greedy rationale behind each."""
        import torch
        from tqdm.auto import tqdm

        texts = [(prompt or "") + t for t in sentences]
        dim = self.get_sentence_embedding_dimension()
        if not texts:
            return np.zeros((0, dim), dtype=np.float32), []
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths share a batch
        out = np.zeros((len(texts), dim), dtype=np.float32)
        rationales = [""] * len(texts)
        show = bool(show_progress_bar) if show_progress_bar is not None else len(texts) > 64
        self.lm.model.eval()
        with tqdm(total=len(texts), desc="GRACE encode", unit="text", disable=not show) as bar:
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                with torch.no_grad():
                    rollout = self.rollouts([texts[i] for i in idx], keep_hidden=True)
                    emb = pool(rollout.hidden, rollout, self.settings.pooling)
                    if normalize_embeddings:
                        emb = torch.nn.functional.normalize(emb, dim=-1)
                out[idx] = emb.numpy()
                for i, r in zip(idx, rollout.rationales):
                    rationales[i] = r
                bar.update(len(idx))
        return out, rationales

    def encode(self, sentences, prompt: str | None = None, batch_size: int = 16, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True, normalize_embeddings: bool = False, device: str | None = None, **_):
        """sentence-transformers-style ``encode``; ``device`` is ignored (the policy stays where it was loaded)."""
        single = isinstance(sentences, str)
        emb, _ = self.encode_with_rationales([sentences] if single else list(sentences), prompt=prompt,
                                             batch_size=batch_size, show_progress_bar=show_progress_bar,
                                             normalize_embeddings=normalize_embeddings)
        if not convert_to_numpy:
            import torch

            emb = torch.from_numpy(emb)
        return emb[0] if single else emb

    def similarity(self, a, b):
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)

    # -- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``adapter/`` (a temp folder renamed into place), then the marker, atomically and last:
        a folder with the marker is complete. Other files in ``path`` (checkpoints, logs) are kept."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path, prefix=".adapter.tmp"))
        try:
            self.lm.model.save_pretrained(tmp)
            target = path / ADAPTER_DIR
            old = path / ".adapter.old"
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        marker = {"format": "embedkit-grace", "version": 1, "name": path.name, "base_lm_name": self.lm.name,
                  "embedding_dimension": self.get_sentence_embedding_dimension(),
                  "settings": self.settings.model_dump(mode="json")}
        fd, tmp_marker = tempfile.mkstemp(dir=path, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(marker, indent=2) + "\n")
        os.replace(tmp_marker, path / GRACE_MARKER)
        self.embedkit_name = path.name
        return path


def create_grace_encoder(settings: GraceSettings, device: str | None = None, name: str = "grace") -> GraceEncoder:
    """A fresh encoder: the base LM with a new LoRA adapter (whose initial update is zero, so the
    encoder starts out equal to the base model)."""
    from peft import LoraConfig, get_peft_model

    lm = load_causal_lm(settings.base_lm, device=device)
    lora = settings.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                        task_type="CAUSAL_LM")
    lm.model = get_peft_model(lm.model, config)
    lm.model.eval()
    return GraceEncoder(lm, settings, name)


def read_grace_settings(path: str | os.PathLike) -> GraceSettings:
    marker = Path(path) / GRACE_MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return GraceSettings.model_validate(data["settings"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{marker}: not a valid GRACE marker ({first})") from None


def load_grace_encoder(path: str | os.PathLike, device: str | None = None) -> GraceEncoder:
    """Load a GRACE folder: its base LM plus the saved LoRA adapter."""
    from peft import PeftModel

    path = Path(path)
    settings = read_grace_settings(path)
    if not (path / ADAPTER_DIR / "adapter_config.json").is_file():
        raise ModelError(f"{path}: GRACE folder without {ADAPTER_DIR}/adapter_config.json")
    lm = load_causal_lm(settings.base_lm, device=device)
    try:
        lm.model = PeftModel.from_pretrained(lm.model, str(path / ADAPTER_DIR), is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot load the LoRA adapter onto {settings.base_lm}: "
                         f"{str(exc).splitlines()[0]}") from None
    lm.model.eval()
    return GraceEncoder(lm, settings, path.resolve().name)


def encode_with_rationales(model, texts: Sequence[str], prompt: str | None = None, batch_size: int = 16,
                           normalize: bool = False, show_progress: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """Embeddings and rationales for ``texts`` from a GRACE encoder (for ``embedkit encode --show-rationales``)."""
    if not isinstance(model, GraceEncoder):
        raise ModelError("rationales exist only for GRACE models (a folder with embedkit_grace.json)")
    return model.encode_with_rationales(list(texts), prompt=prompt, batch_size=batch_size,
                                        show_progress_bar=show_progress, normalize_embeddings=normalize)
