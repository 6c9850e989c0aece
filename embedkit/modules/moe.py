"""A sentence-transformers ``Transformer`` whose feed-forward blocks are per-domain experts.

Kapur, Hallee et al. 2024, "Contrastive Learning and Mixture of Experts Enables Precise Vector
Embeddings" (arXiv:2401.15713): one model serves N domains, each sentence routed to its domain's
copy of the feed-forward blocks ("enforced routing"), during training and at inference.

The module saves as a normal sentence-transformers folder (``modules.json`` names
``embedkit.modules.moe.MoETransformer``; the experts' weights are in ``model.safetensors``), so
``SentenceTransformer(folder)`` and ``embedkit.models.load_model(folder)`` load it once embedkit is
installed. How a forward pass picks its experts, first match wins:

1. ``features["domain_ids"]``: a ``LongTensor`` with one domain index per row (training losses set it);
2. the ``domain`` keyword: ``model.encode(texts, domain="science")`` (one name for the whole call);
3. the domain set by :func:`routed` (``with routed(model, "science"): ...``) -- use this around any
   code that encodes through other layers (embedkit's evaluation, mteb, the encoding cache);
4. the learned router, if the model has one (an extension, see below);
5. ``default_domain`` (the first domain unless set), with a warning.

Extension, not in the paper's enforced setting: ``learned_router=True`` adds a linear classifier over
the mean input token embedding that predicts the domain of a sentence that comes without one. It is
trained by :class:`embedkit.training.moe.DomainRoutedLoss` with a cross-entropy term on the known
domains, and saved beside the model as ``domain_router.safetensors``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from sentence_transformers.base.modules.transformer import TRANSFORMER_TASK_TO_AUTO_MODEL, Transformer
from torch import Tensor, nn

from embedkit.errors import ModelError
from embedkit.modules.experts import add_experts, expert_route, resolve_layers

logger = logging.getLogger(__name__)

ROUTER_FILE = "domain_router.safetensors"
NO_DOMAIN = -1


class MoETransformer(Transformer):
    """``Transformer`` + per-domain experts in ``expert_layers`` (None: every layer).

    Args:
        model_name_or_path: a base encoder (experts are made as copies of its feed-forward blocks) or a
            saved MoE folder (experts loaded from it).
        domains: the domain names, one expert per domain, in expert order.
        expert_layers: indices of the layers that get experts; None for all.
        default_domain: the domain used when a forward pass is given none and there is no router.
        learned_router: add the learned router extension (see the module docstring).
        **kwargs: passed to ``Transformer`` (``max_seq_length``, ``model_kwargs``, ...).
    """

    config_keys = [*Transformer.config_keys, "domains", "expert_layers", "default_domain", "learned_router"]
    forward_kwargs = {"domain"}

    def __init__(self, model_name_or_path: str, *, domains: Sequence[str], expert_layers: Sequence[int] | None = None,
                 default_domain: str | None = None, learned_router: bool = False, **kwargs: Any) -> None:
        domains = [str(d) for d in domains]
        if not domains or len(set(domains)) != len(domains):
            raise ModelError(f"domains must be a non-empty list of distinct names, got {domains}")
        if default_domain is not None and default_domain not in domains:
            raise ModelError(f"default_domain {default_domain!r} is not one of the domains: {', '.join(domains)}")
        # read by _load_model, which Transformer.__init__ calls
        self._moe_setup = (domains, None if expert_layers is None else list(expert_layers))
        super().__init__(model_name_or_path, **kwargs)
        self.domains = domains
        self.default_domain = default_domain or domains[0]
        self.expert_layers = resolve_layers(self.model, expert_layers)
        self.learned_router = learned_router
        # A persistent buffer, so the active domain is part of ``state_dict`` and thereby of
        # embedkit.models.model_fingerprint: cached embeddings of two domains never collide.
        self.register_buffer("active_domain", torch.tensor(NO_DOMAIN, dtype=torch.long), persistent=True)
        self.domain_router = nn.Linear(self.model.get_input_embeddings().embedding_dim, len(domains)) \
            if learned_router else None
        if self.domain_router is not None:
            saved = Path(str(model_name_or_path)) / ROUTER_FILE
            if saved.is_file():
                from safetensors.torch import load_model

                load_model(self.domain_router, str(saved))
        self._warned_default = False

    # ------------------------------------------------------------------------------ loading, saving

    def _load_model(self, model_name_or_path, transformer_task, config, backend, is_peft_model, **model_kwargs):
        domains, layers = self._moe_setup
        if backend != "torch":
            raise ModelError(f"mixture of experts needs the torch backend, not {backend}")
        saved = _saved_weights(model_name_or_path)
        if saved is None:  # a base encoder: experts start as copies of its feed-forward blocks
            model = super()._load_model(model_name_or_path, transformer_task, config, backend, is_peft_model,
                                        **model_kwargs)
            add_experts(model, len(domains), layers)
            return model
        model = TRANSFORMER_TASK_TO_AUTO_MODEL[transformer_task].from_config(config)
        add_experts(model, len(domains), layers)
        _load_state(model, saved, model_name_or_path)
        return model

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        super().save(output_path, *args, safe_serialization=safe_serialization, **kwargs)
        if self.domain_router is not None:
            from safetensors.torch import save_model

            save_model(self.domain_router, os.path.join(output_path, ROUTER_FILE))

    # ---------------------------------------------------------------------------------------- routing

    def domain_index(self, domain: str) -> int:
        try:
            return self.domains.index(domain)
        except ValueError:
            raise ModelError(f"unknown domain {domain!r}; this model's domains: {', '.join(self.domains)}") from None

    def router_logits(self, features: dict[str, Any]) -> Tensor:
        """The learned router's domain logits, ``(batch, domains)``, from the mean input token embedding."""
        if self.domain_router is None:
            raise ModelError("this model has no learned router (learned_router: false)")
        with torch.no_grad():
            tokens = self.model.get_input_embeddings()(features["input_ids"])
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.domain_router(mean)

    def route_for(self, features: dict[str, Any], domain: str | None = None) -> int | Tensor:
        ids = features.get("domain_ids")
        if ids is not None:
            return ids.to(device=features["input_ids"].device, dtype=torch.long)
        if domain is not None:
            # One name only: encode() sorts and batches the texts, so a per-text list would not line up
            # with the rows. Per-row routing goes through features["domain_ids"].
            if not isinstance(domain, str):
                raise ModelError("domain= takes one domain name; encode each domain's texts in its own call")
            return self.domain_index(domain)
        if int(self.active_domain) != NO_DOMAIN:
            return int(self.active_domain)
        if self.domain_router is not None:
            return self.router_logits(features).argmax(dim=-1)
        if not self._warned_default:
            logger.warning("mixture-of-experts model called without a domain; using default domain %r "
                           "(pass domain=..., or wrap the call in embedkit.modules.routed(model, domain))",
                           self.default_domain)
            self._warned_default = True
        return self.domain_index(self.default_domain)

    def forward(self, features: dict[str, Any], domain: str | None = None, **kwargs) -> dict[str, Any]:
        route = self.route_for(features, domain)
        with expert_route(route):
            return super().forward({k: v for k, v in features.items() if k != "domain_ids"}, **kwargs)

    def _should_flatten_inputs(self, modality, processor_inputs, **kwargs) -> bool:
        # Flash-attention unpadding packs all rows into one sequence, which per-row routing cannot split.
        return False

    def __repr__(self) -> str:
        return (f"MoETransformer(domains={self.domains}, expert_layers={self.expert_layers}, "
                f"learned_router={self.learned_router}, architecture={self.model.__class__.__name__})")


def _saved_weights(model_name_or_path: str) -> Path | None:
    """The weight file(s) of a saved MoE folder, or None for a base encoder (no expert weights)."""
    folder = Path(str(model_name_or_path))
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if index.is_file():
        keys = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    elif single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            keys = list(f.keys())
    else:
        return None
    return (index if index.is_file() else single) if any(".experts." in k for k in keys) else None


def _load_state(model: nn.Module, weights: Path, where: str) -> None:
    from safetensors.torch import load_file

    if weights.name.endswith(".index.json"):
        shards = sorted(set(json.loads(weights.read_text(encoding="utf-8"))["weight_map"].values()))
        state = {k: v for shard in shards for k, v in load_file(str(weights.parent / shard)).items()}
    else:
        state = load_file(str(weights))
    result = model.load_state_dict(state, strict=False)
    persistent_buffers = {name for name, _ in model.named_buffers()} - set(model.state_dict())
    missing = [k for k in result.missing_keys if k not in persistent_buffers]
    if missing or result.unexpected_keys:
        raise ModelError(f"{where}: expert weights do not match the model (missing {missing[:3]}, unexpected "
                         f"{result.unexpected_keys[:3]}); was it saved with different domains or expert_layers?")


# -------------------------------------------------------------------------------------- public helpers


def moe_modules(model: nn.Module) -> list[MoETransformer]:
    return [m for m in model.modules() if isinstance(m, MoETransformer)]


def is_moe(model: nn.Module) -> bool:
    return bool(moe_modules(model))


def model_domains(model: nn.Module) -> list[str]:
    """The domain names of a mixture-of-experts model ([] for any other model)."""
    modules = moe_modules(model)
    return list(modules[0].domains) if modules else []


@contextlib.contextmanager
def routed(model: nn.Module, domain: str | None) -> Iterator[nn.Module]:
    """Route every forward pass of ``model`` inside the block to ``domain``'s experts.

    ``domain=None`` does nothing (so callers can always wrap); a domain on a model without experts, or
    a name the model does not know, raises ``ModelError``. The active domain is part of the model's
    ``state_dict`` while the block runs, so ``model_fingerprint`` (and the embedding cache) tell domains apart.
    """
    if domain is None:
        yield model
        return
    modules = moe_modules(model)
    if not modules:
        raise ModelError(f"--domain {domain!r} given, but this model has no domain experts "
                         "(only mixture-of-experts models trained with method: moe take a domain)")
    previous = [int(m.active_domain) for m in modules]
    for module in modules:
        module.active_domain.fill_(module.domain_index(domain))
    try:
        yield model
    finally:
        for module, value in zip(modules, previous):
            module.active_domain.fill_(value)


def to_moe(model, domains: Sequence[str], expert_layers: Sequence[int] | None = None,
           default_domain: str | None = None, learned_router: bool = False):
    """A new ``SentenceTransformer``: ``model`` with its first (Transformer) module replaced by a
    :class:`MoETransformer` whose experts are copies of that module's feed-forward blocks. The other
    modules (pooling, normalisation, ...) and the prompts are shared with ``model``.

    The experts are copied from the weights in ``model``'s own ``Transformer``, so a model changed in
    memory converts as it is.
    """
    from sentence_transformers import SentenceTransformer

    first = model[0]
    if not isinstance(first, Transformer) or isinstance(first, MoETransformer):
        raise ModelError("to_moe needs a SentenceTransformer whose first module is a plain Transformer")
    with _tmp_folder() as folder:
        first.save(folder)  # the Transformer's own folder: weights, tokenizer, sentence_bert_config.json
        init = MoETransformer._load_init_kwargs(folder, local_files_only=True)
        moe = MoETransformer(folder, domains=domains, expert_layers=expert_layers, default_domain=default_domain,
                             learned_router=learned_router, **init)
    moe.max_seq_length = first.max_seq_length
    converted = SentenceTransformer(modules=[moe, *list(model)[1:]], device=str(model.device),
                                    prompts=dict(getattr(model, "prompts", {}) or {}),
                                    similarity_fn_name=getattr(model, "similarity_fn_name", None))
    converted.embedkit_name = f"{getattr(model, 'embedkit_name', 'model')}-moe"
    return converted


@contextlib.contextmanager
def _tmp_folder() -> Iterator[str]:
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="embedkit-moe-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
