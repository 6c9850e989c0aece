"""A causal LM as a plain text encoder: the mean of its last-layer hidden states over the raw text's
tokens (no instruction, no rationale). It is GRACE's first baseline: the same LM without the policy,
so a gain of GRACE over it is what writing rationales (and training the policy) adds.
"""
from __future__ import annotations

import json

import numpy as np

from embedkit.generative.lm import CausalLM, load_causal_lm


class LMTextEncoder:
    """What embedkit's encoding engine and fingerprinting read from a model, for a causal LM used as an
    encoder (not a ``SentenceTransformer``: its embeddings come from generation and pooling)."""

    def __init__(self, lm: CausalLM, name: str):
        self.lm, self.embedkit_name = lm, name
        self.prompts: dict[str, str] = {}
        self.similarity_fn_name = "cosine"

    @property
    def device(self):
        return self.lm.device

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.lm.model.config.hidden_size)

    def _state_dict_marked(self, key: str, marker: bytes) -> dict:
        """The LM's weights plus ``marker`` under ``key``: the embedding cache's fingerprint hashes the state
        dict, and two encoders on the same weights that embed differently must not share entries."""
        import torch

        return {**self.lm.model.state_dict(), key: torch.tensor(list(marker), dtype=torch.uint8)}


class MeanPooledLMEncoder(LMTextEncoder):
    """``encode(texts)``: mean-pooled last-layer states of the first ``max_input_tokens`` tokens of each text."""

    def __init__(self, lm: CausalLM, max_input_tokens: int = 128, name: str | None = None):
        super().__init__(lm, name or f"{lm.name.split('/')[-1]}-mean-pooled")
        self.max_input_tokens = max_input_tokens

    @property
    def max_seq_length(self) -> int:
        return self.max_input_tokens

    def state_dict(self):
        """Marked with this encoder's pooling, apart from a GRACE encoder on the same weights."""
        return self._state_dict_marked("embedkit_encoder", json.dumps({"encoder": "mean-pooled raw text"}).encode())

    def encode(self, sentences, prompt: str | None = None, batch_size: int = 16, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True, normalize_embeddings: bool = False, device: str | None = None, **_):
        import torch
        from tqdm.auto import tqdm

        single = isinstance(sentences, str)
        texts = [(prompt or "") + t for t in ([sentences] if single else list(sentences))]
        tok = self.lm.tokenizer
        out = np.zeros((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        show = bool(show_progress_bar) if show_progress_bar is not None else len(texts) > 64
        self.lm.model.eval()
        for start in tqdm(range(0, len(texts), batch_size), desc="LM encode", unit="batch", disable=not show):
            idx = order[start:start + batch_size]
            ids = [tok(texts[i], add_special_tokens=False)["input_ids"][:self.max_input_tokens] or [tok.eos_token_id]
                   for i in idx]
            width = max(len(x) for x in ids)
            input_ids = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for row, x in enumerate(ids):  # right padding: causal states of real tokens never see the padding
                input_ids[row, :len(x)] = torch.tensor(x)
                mask[row, :len(x)] = 1
            with torch.no_grad():
                hidden = self.lm.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                       output_hidden_states=True).hidden_states[-1].float().cpu()
            emb = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            if normalize_embeddings:
                emb = torch.nn.functional.normalize(emb, dim=-1)
            out[idx] = emb.numpy()
        if not convert_to_numpy:
            import torch

            out = torch.from_numpy(out)
        return out[0] if single else out

    def similarity(self, a, b):
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)


def load_mean_pooled_lm(name_or_path: str = "default", max_input_tokens: int = 128,
                        device: str | None = None) -> MeanPooledLMEncoder:
    return MeanPooledLMEncoder(load_causal_lm(name_or_path, device=device), max_input_tokens)
