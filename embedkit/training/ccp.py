"""The ``ccp`` method: contrastive context prediction (Wu et al., IJCAI 2022) on unlabelled documents.

Pipeline: documents (a BEIR corpus -- its qrels are never read -- or a text file with one document a
line) -> sentences (pysbd, a rule-based splitter: nothing is downloaded at run time; results cached on
disk) -> (anchor, positive, language) rows, the positive drawn from the anchor's window of ``w``
sentences -> :class:`embedkit.losses.CCPLoss` through ``SentenceTransformerTrainer`` (in-batch negatives
+ per-language memory bank, asymmetric batch norm on the projection), with a collapse guard.

Recipe::

    method: ccp
    model: default
    data: {kind: beir, path: scifact}        # or {kind: sentences, path: docs.txt}: one document a line
    params: {window: 2, memory_bank_size: 4096, temperature: 0.05, language: en, momentum: 0.99}

Without ``momentum`` the bank is filled by the encoder being trained, and on all-MiniLM-L6-v2 and
SciFact that narrows the embeddings and lowers retrieval quality (docs/moe-ccp.md, runs E1-E11).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from embedkit.errors import ConfigError, DataError
from embedkit.training.recipe import Recipe
from embedkit.training.result import TrainResult

SPLITTER_VERSION = "pysbd-0.3"


class CCPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(2, ge=1)  # w: the positive is at most w sentences before or after the anchor
    # sentence: one sentence of the window (the paper); window: the window's sentences joined into one text
    positive: Literal["sentence", "window"] = "sentence"
    language: str = "en"  # the documents' language (pysbd rules and memory bank queue)
    min_sentence_chars: int = Field(10, ge=0)  # shorter fragments are dropped before pairing
    include_title: bool = True  # beir: the title is the document's first sentence
    max_documents: Optional[int] = Field(None, ge=1)  # keep the first N documents
    projection_dim: Optional[int] = Field(None, ge=1)
    # random: nn.Linear's default, batch norm at (0, 1); identity: the head starts as the identity map,
    # its batch norm calibrated on `calibration_sentences` training sentences (CCPLoss.calibrate)
    projection_init: Literal["random", "identity"] = "random"
    calibration_sentences: int = Field(512, ge=2)
    batch_norm: bool = True  # the paper's asymmetric batch norm on the projection (false: an ablation)
    memory_bank_size: int = Field(4096, ge=0)
    temperature: float = Field(0.05, gt=0)
    symmetric: bool = True
    # leave out the anchor's own document's other sentences (in the batch and in the bank) as negatives:
    # they are its context too (docs/moe-ccp.md, run E7)
    mask_same_document: bool = True
    # also leave out candidates the encoder already places closer to the anchor than its positive
    # (likely same-topic false negatives; GISTEmbed's rule with the encoder itself as the guide)
    mask_false_negatives: bool = False
    # a momentum copy of the encoder (MoCo) embeds the candidates and fills the bank; None: no copy
    momentum: Optional[float] = Field(None, ge=0, lt=1)
    collapse_threshold: float = Field(0.05, ge=0, lt=1)
    collapse_patience: int = Field(3, ge=1)


# ------------------------------------------------------------------------------------- sentences


def split_sentences(text: str, language: str = "en") -> list[str]:
    """The sentences of ``text`` by pysbd's rules for ``language`` (stripped, blanks dropped)."""
    return [s.strip() for s in _segmenter(language).segment(text) if s.strip()]


_SEGMENTERS: dict[str, object] = {}


def _segmenter(language: str):
    if language not in _SEGMENTERS:
        import pysbd

        try:
            _SEGMENTERS[language] = pysbd.Segmenter(language=language, clean=False)
        except ValueError as exc:  # pysbd names its supported languages in the message
            raise ConfigError(f"params.language: {exc}") from None
    return _SEGMENTERS[language]


def split_documents(documents: Sequence[str], language: str = "en", cache: Path | None = None,
                    show_progress: bool = True) -> list[list[str]]:
    """Sentences of every document, cached in ``cache`` (a JSON file keyed by the texts) when given."""
    from tqdm.auto import tqdm

    key = hashlib.sha256(f"{SPLITTER_VERSION}\0{language}\0".encode())
    for doc in documents:
        key.update(doc.encode("utf-8", "surrogatepass") + b"\0")
    file = cache / f"{key.hexdigest()}.json" if cache is not None else None
    if file is not None and file.is_file():
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except ValueError:
            file.unlink(missing_ok=True)
    split = [split_sentences(doc, language) for doc in tqdm(documents, desc="split sentences", unit="doc",
                                                              disable=not show_progress)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(split, f)
        os.replace(tmp, file)
    return split


def context_pairs(documents: Iterable[Sequence[str]], window: int, seed: int = 0, min_chars: int = 0,
                  positive: str = "sentence") -> list[tuple[str, str, int]]:
    """One (anchor, positive, document index) row per sentence of every document with at least two
    sentences. ``positive="sentence"``: a sentence drawn uniformly from those at distance 1..``window``
    on either side (the paper's pairs); ``"window"``: all of them, joined in document order (the anchor
    predicts its whole context passage, as in the inverse cloze task)."""
    if positive not in ("sentence", "window"):
        raise ValueError(f"positive must be 'sentence' or 'window', got {positive!r}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    rng = random.Random(seed)
    pairs = []
    for document, sentences in enumerate(documents):
        kept = [s for s in sentences if len(s) >= min_chars]
        for center, anchor in enumerate(kept):
            context = [kept[i] for i in range(max(0, center - window), min(len(kept), center + window + 1))
                       if i != center and kept[i] != anchor]
            if context:
                pairs.append((anchor, rng.choice(context) if positive == "sentence" else " ".join(context), document))
    return pairs


def load_documents(recipe: Recipe, params: CCPParams) -> list[str]:
    from embedkit import data

    spec = recipe.data
    path = spec.resolved_path()
    if spec.kind == "beir":
        docs = [f"{d.title}\n{d.text}" if params.include_title and d.title else d.text
                for d in data.iter_documents(path)]
    elif spec.kind == "sentences":
        docs = data.load_sentences(path)
    else:
        raise ConfigError(f"data.kind: method ccp reads documents from kind beir (a corpus) or sentences "
                          f"(one document a line), not {spec.kind}")
    docs = docs[: params.max_documents]
    if not docs:
        raise DataError("no documents", path=path)
    return docs


def ccp_columns(recipe: Recipe, params: CCPParams) -> dict[str, list]:
    from embedkit.paths import cache_dir

    documents = load_documents(recipe, params)
    sentences = split_documents(documents, params.language, cache=cache_dir() / "sentences")
    pairs = context_pairs(sentences, params.window, seed=recipe.seed, min_chars=params.min_sentence_chars,
                          positive=params.positive)
    pairs = pairs[: recipe.data.limit]
    if not pairs:
        raise DataError("no document has two sentences to pair", path=recipe.data.resolved_path())
    # label: the language id, with the document id when same-document candidates are to be masked
    labels = [[0, d] for _, _, d in pairs] if params.mask_same_document else [0] * len(pairs)
    return {"anchor": [a for a, _, _ in pairs], "positive": [p for _, p, _ in pairs], "label": labels}


# ------------------------------------------------------------------------------------------ runner


def train_ccp(recipe: Recipe, params: CCPParams, out_dir: Path, resume: bool = False) -> TrainResult:
    import torch
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import set_seed

    from embedkit.encoding import encode
    from embedkit.losses import CCPLoss
    from embedkit.models import load_model
    from embedkit.training.callbacks import LossStateCheckpointer, NonFiniteLossGuard
    from embedkit.training.checkpoints import prepare_out_dir
    from embedkit.training.collapse import CollapseGuard
    from embedkit.training.datasets import to_dataset
    from embedkit.training.evaluation import RecipeEvaluator, evaluate_sets, load_eval_sets
    from embedkit.training.result import evaluation_log, write_run_files
    from embedkit.training.trainer import check_length, evaluate_before

    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)
    columns = ccp_columns(recipe, params)
    eval_sets = load_eval_sets(recipe.eval, seed=recipe.seed)
    args = ccp_training_arguments(recipe, out_dir)

    model = load_model(recipe.model)
    inference_length = model.max_seq_length = recipe.eval.max_seq_length or model.max_seq_length
    check_length(model, recipe.max_seq_length)
    before = evaluate_before(model, recipe, eval_sets, out_dir) if args.should_save else {}

    set_seed(recipe.seed)  # the projection head is freshly initialised
    loss = CCPLoss(model, languages=[params.language], projection_dim=params.projection_dim,
                   memory_bank_size=params.memory_bank_size, temperature=params.temperature,
                   symmetric=params.symmetric, projection_init=params.projection_init,
                   batch_norm=params.batch_norm, mask_false_negatives=params.mask_false_negatives, momentum=params.momentum)
    model.max_seq_length = recipe.max_seq_length or inference_length
    if params.projection_init == "identity" and params.batch_norm and not resume_from:  # resuming restores the head
        anchors = random.Random(recipe.seed).sample(columns["anchor"], min(params.calibration_sentences, len(columns["anchor"])))
        loss.calibrate(torch.from_numpy(encode(model, anchors, batch_size=recipe.eval.batch_size)))
    finite = NonFiniteLossGuard(loss)
    loss_state = LossStateCheckpointer(loss, out_dir)  # projection, batch-norm statistics and bank
    loss_state.restore(resume_from)
    collapse = CollapseGuard(model, params.collapse_threshold, params.collapse_patience)
    during = [s for s in eval_sets if s.spec.during]
    evaluator = RecipeEvaluator(during, recipe.eval.batch_size, inference_length) if during and recipe.eval.steps else None
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=to_dataset(columns), loss=loss,
                                         evaluator=evaluator, callbacks=[finite, loss_state, collapse])
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    finite.check(out_dir)
    collapse.check()
    model.max_seq_length = inference_length

    result = TrainResult(
        out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model, steps=trainer.state.global_step,
        train_seconds=round(seconds, 1), resumed_from=str(resume_from) if resume_from else None, before=before,
        during=evaluation_log(trainer.state.log_history)
        + [{"step": step, "embedding_spread": spread} for step, spread in collapse.history],
        headline={s.name: s.headline for s in eval_sets},
    )
    if args.should_save:
        result.after = evaluate_sets(model, eval_sets, recipe.eval.batch_size)
        model.save(str(out_dir), create_model_card=False)
        write_run_files(result)
    return result


def ccp_training_arguments(recipe: Recipe, out_dir: Path):
    """The contrastive trainer's arguments; CCP's in-batch negatives need batches without repeated
    texts, as InfoNCE's do, which is all ``training_arguments`` reads from the loss spec."""
    from embedkit.training.loss_specs import InfoNCESpec
    from embedkit.training.trainer import training_arguments

    return training_arguments(recipe.model_copy(update={"loss": InfoNCESpec(name="infonce")}), out_dir)


def read_ccp_data(recipe: Recipe, params: CCPParams) -> tuple[int, int]:
    """(context pairs, evaluation sets), read as the runner reads them: what ``embedkit train --check``
    reports (the recipe's ``data`` names documents to split, not training rows)."""
    from embedkit.training.evaluation import load_eval_sets

    return len(ccp_columns(recipe, params)["anchor"]), len(load_eval_sets(recipe.eval, seed=recipe.seed))


def _register() -> None:
    from embedkit.training.runners import register_runner

    register_runner("ccp", CCPParams, train_ccp, read_data=read_ccp_data)


_register()
