"""STS evaluation: Spearman and Pearson of cosine similarity (x100), computed by mteb's STS evaluator."""
from __future__ import annotations

from embedkit.data.records import STSDataset
from embedkit.evaluation._mteb import QUIET_ENCODE_KWARGS, no_datasets_bars
from embedkit.evaluation.encoder import MtebEncoder
from embedkit.evaluation.tasks import sts_task


def _run(encoder: MtebEncoder, dataset: STSDataset, split: str, subset: str | None) -> dict:
    task = sts_task(dataset, split=split, subset=subset)
    with no_datasets_bars():
        scores = task.evaluate(encoder, split, encode_kwargs={"batch_size": encoder.batch_size,
                                                              **QUIET_ENCODE_KWARGS})["default"]
    pairs = dataset.subsets[subset] if subset is not None else dataset.pairs
    return {"spearman": 100 * scores["cosine_spearman"], "pearson": 100 * scores["cosine_pearson"],
            "n_pairs": len(pairs)}


def evaluate_sts(model, dataset: STSDataset, *, split: str = "test", batch_size: int = 32, device: str | None = None,
                 show_progress: bool = True) -> dict:
    """Scores x100. For a SentEval year folder, ``subsets`` holds each subset's scores and the top-level
    ``spearman``/``pearson`` are the pooled "all" scores over the concatenated pairs, as SimCSE reports."""
    encoder = MtebEncoder(model, batch_size=batch_size, device=device, show_progress=show_progress)
    result = _run(encoder, dataset, split, None)
    if dataset.subsets:
        result["subsets"] = {name: _run(encoder, dataset, split, name) for name in dataset.subsets}
    return result
