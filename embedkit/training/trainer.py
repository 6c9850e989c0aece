"""The ``contrastive`` method: a recipe trained with sentence-transformers' ``SentenceTransformerTrainer``.

The whole run is :func:`train_contrastive`, top to bottom: data (fails early on bad files), trainer
arguments, model, hard-negative mining, evaluation before, training, evaluation after, save. Checkpoints,
``--resume``, logging, progress bars and multi-process data parallel (torchrun / accelerate launch) are
the HF Trainer's own.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from embedkit.atomic import write_text_atomic
from embedkit.errors import ConfigError
from embedkit.training.callbacks import LossStateCheckpointer, NonFiniteLossGuard
from embedkit.training.checkpoints import prepare_out_dir
from embedkit.training.datasets import load_training_data, to_dataset
from embedkit.training.evaluation import RecipeEvaluator, evaluate_sets, load_eval_sets
from embedkit.training.recipe import Recipe
from embedkit.training.result import TrainResult, evaluation_log, write_run_files
from embedkit.training.runners import register_runner


def train_contrastive(recipe: Recipe, params: None, out_dir: Path, resume: bool = False) -> TrainResult:
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import set_seed

    from embedkit.models import load_model

    out_dir = Path(out_dir)
    resume_from = prepare_out_dir(out_dir, resume)

    # 1. Data before any model: a malformed training or evaluation file fails here, naming file and line.
    data = load_training_data(recipe.data)
    eval_sets = load_eval_sets(recipe.eval, seed=recipe.seed)

    # 2. Trainer arguments (under torchrun/accelerate this also joins the process group).
    args = training_arguments(recipe, out_dir)

    # 3. The base model; it is evaluated and saved at its own length, trained at recipe.max_seq_length.
    model = load_model(recipe.model)
    inference_length = model.max_seq_length = recipe.eval.max_seq_length or model.max_seq_length
    check_length(model, recipe.max_seq_length)
    if recipe.data.hard_negatives is not None:
        with args.main_process_first(desc="mining hard negatives"):
            data.columns = with_hard_negatives(model, recipe, data)
    sampling = {}
    if recipe.data.debcse is not None:
        with args.main_process_first(desc="DebCSE sampling"):
            data.columns, sampling = debcse_rows(model, recipe, data.columns["anchor"])
    train_dataset = to_dataset(recipe.loss.batch_columns(data.columns))

    # 4. The recipe's evaluation of the base model (kept in the out folder, so a resumed run reuses it).
    before = evaluate_before(model, recipe, eval_sets, out_dir) if args.should_save else {}

    # 5. Train (seeded before the loss is built: some losses own freshly initialised layers).
    set_seed(recipe.seed)
    loss = recipe.loss.build(model)
    guard = NonFiniteLossGuard(loss)
    loss_state = LossStateCheckpointer(loss, out_dir)
    loss_state.restore(resume_from)
    during = [s for s in eval_sets if s.spec.during]
    evaluator = RecipeEvaluator(during, recipe.eval.batch_size, inference_length) if during and recipe.eval.steps else None
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss,
                                         evaluator=evaluator, callbacks=[guard, loss_state])
    model.max_seq_length = recipe.max_seq_length or inference_length
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    guard.check(out_dir)
    model.max_seq_length = inference_length
    if recipe.wise_ft_alpha is not None:
        from embedkit.training.interpolation import interpolate_weights

        interpolate_weights(load_model(recipe.model), model, recipe.wise_ft_alpha)

    # 6. Evaluate the trained model and save it with its recipe, results and model card.
    result = TrainResult(
        out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model, steps=trainer.state.global_step,
        train_seconds=round(seconds, 1), resumed_from=str(resume_from) if resume_from else None, before=before,
        during=evaluation_log(trainer.state.log_history),
        headline={s.name: s.headline for s in eval_sets}, data=sampling,
    )
    if args.should_save:
        result.after = evaluate_sets(model, eval_sets, recipe.eval.batch_size)
        model.save(str(out_dir), create_model_card=False)
        write_run_files(result)
    return result


def training_arguments(recipe: Recipe, out_dir: Path, evaluate_during: bool | None = None):
    """The trainer's arguments. ``evaluate_during``: whether there is anything to evaluate every
    ``eval.steps`` (None: any ``during`` set in ``eval.sets``; a runner with its own sets says)."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    if recipe.precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("precision: fp16 needs a CUDA device; use bf16 or fp32 on this machine")
    if evaluate_during is None:
        evaluate_during = any(s.during for s in recipe.eval.sets)
    evaluate_during = recipe.eval.steps is not None and evaluate_during
    return SentenceTransformerTrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio or recipe.warmup_steps,  # a float < 1 is a ratio in transformers v5
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps or -1,
        max_grad_norm=recipe.max_grad_norm,
        bf16=recipe.precision == "bf16",
        fp16=recipe.precision == "fp16",
        seed=recipe.seed,
        data_seed=recipe.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES if recipe.loss.in_batch_negatives else BatchSamplers.BATCH_SAMPLER,
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=recipe.eval.steps if evaluate_during else None,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        report_to="none",
        run_name=recipe.name,
        # Without it, transformers does not treat processes started by torchrun on a machine with no
        # accelerator as data parallel: each would train alone on all the data and write the same folder.
        use_cpu=not torch.accelerator.is_available(),
    )


def check_length(model, length: int | None) -> None:
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if length and positions and length > positions:
        raise ConfigError(f"max_seq_length: {length} exceeds the model's {positions} position embeddings")


def with_hard_negatives(model, recipe: Recipe, data) -> dict[str, list]:
    """The training pairs with ``negative_1..k`` columns mined by ``recipe.data.hard_negatives`` (cached)."""
    from embedkit.models import load_model
    from embedkit.training.mining import cached_mining, mined_columns

    spec = recipe.data.hard_negatives
    miner = model if spec.model is None else load_model(spec.model)
    mined = cached_mining(miner, data.beir, recipe.data.resolved_path(), window=spec.window,
                          num_negatives=spec.num_negatives, sampling=spec.sampling, seed=recipe.seed,
                          batch_size=spec.batch_size)
    wanted = set(zip(data.columns["query_id"], data.columns["document_id"]))
    kept = [m for m in mined if (m.query_id, m.positive_id) in wanted]
    if not kept:
        raise ConfigError(f"data.hard_negatives: no query has {spec.num_negatives} negatives in ranks {spec.range}")
    return mined_columns(kept)


def debcse_rows(model, recipe: Recipe, sentences: list[str]) -> tuple[dict[str, list], dict]:
    """``(anchor, positive, negative)`` columns drawn by DebCSE's sampler over the corpus, and its statistics."""
    from embedkit.encoding import cached_encode
    from embedkit.models import load_model
    from embedkit.training.debcse import debcse_pairs

    spec = recipe.data.debcse
    encoder = model if spec.encoder is None else load_model(spec.encoder)
    embeddings = cached_encode(encoder, sentences, batch_size=spec.batch_size)
    drawn = debcse_pairs(sentences, embeddings, neighbours=spec.neighbours, positive_threshold=spec.positive_threshold,
                         negative_threshold=spec.negative_threshold, max_weight=spec.max_weight, trim=spec.trim,
                         rows=spec.rows, seed=recipe.seed)
    return drawn.columns, {"debcse_sampling": drawn.stats}


def evaluate_before(model, recipe: Recipe, eval_sets, out_dir: Path) -> dict:
    if not recipe.eval.before or not eval_sets:
        return {}
    saved = out_dir / "results-before.json"
    wanted = [s.name for s in eval_sets]
    if saved.exists():
        cached = json.loads(saved.read_text(encoding="utf-8"))
        if list(cached) == wanted:
            return cached
    before = evaluate_sets(model, eval_sets, recipe.eval.batch_size)
    write_text_atomic(saved, json.dumps(before, indent=2) + "\n")
    return before


register_runner("contrastive", None, train_contrastive)
