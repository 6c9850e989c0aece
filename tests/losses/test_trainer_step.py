"""Each loss plugs into SentenceTransformerTrainer: one optimisation step runs and changes the weights."""
from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

from embedkit.losses import CachedInfoNCELoss, CoSENTLoss, DebCSELoss, InfoNCELoss, WhitenedCSELoss

TEXTS = [f"sentence {i} about topic {i % 3} and some words" for i in range(8)]
TRIPLETS = {"anchor": TEXTS, "positive": [t.upper() for t in TEXTS], "negative": TEXTS[::-1]}
DATASETS = {
    "infonce": (lambda m: InfoNCELoss(m, hard_negative_weight=2.0, symmetric=True), TRIPLETS),
    "simcse-unsup": (lambda m: InfoNCELoss(m), {"anchor": TEXTS, "positive": TEXTS}),
    "cached": (lambda m: CachedInfoNCELoss(m, mini_batch_size=3), TRIPLETS),
    "debcse": (lambda m: DebCSELoss(m), TRIPLETS),
    "whitenedcse": (lambda m: WhitenedCSELoss(m, num_views=3), {"text": TEXTS}),
    "cosent": (lambda m: CoSENTLoss(m), {"sentence1": TEXTS, "sentence2": TEXTS[::-1],
                                         "score": [i / 8 for i in range(8)]}),
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_one_trainer_step_changes_the_weights(tiny_model, tmp_path, name):
    make_loss, columns = DATASETS[name]
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, learning_rate=1e-3,
        report_to="none", save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    trainer = SentenceTransformerTrainer(model=tiny_model, args=args, train_dataset=Dataset.from_dict(columns),
                                         loss=make_loss(tiny_model))
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [k for k, v in tiny_model.state_dict().items() if not torch.equal(before[k], v)]
    assert any("encoder" in k for k in changed), changed  # the transformer itself was updated
