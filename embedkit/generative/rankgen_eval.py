"""RankGen measurements on a recipe's dev or held-out prefixes: suffix identification for several
scorers at once (trained RankGen folders, any embedding model as an untrained scorer, ``lm:NAME`` for
an LM's own likelihood), and the decoding comparison (nucleus / rerank / beam, gold as reference).
Used by ``embedkit rankgen suffix-id|compare`` and by the study that writes results/generative/.
"""
from __future__ import annotations

from typing import Sequence

from embedkit.errors import ConfigError
from embedkit.generative.rankgen_train import RankGenParams, eval_sets, load_data

LM_SCORER_PREFIX = "lm:"


def load_any_scorer(spec: str, max_prefix_tokens: int = 256, device: str | None = None):
    """``lm:NAME``: the LM likelihood scorer of causal LM NAME; anything else: a RankGen scorer
    (a trained RankGen folder, or an embedding model with the RankGen markers added)."""
    if spec.startswith(LM_SCORER_PREFIX):
        from embedkit.generative.lm_scorer import load_lm_scorer

        return load_lm_scorer(spec[len(LM_SCORER_PREFIX):] or "default", max_prefix_tokens, device=device)
    from embedkit.generative.rankgen import load_scorer

    return load_scorer(spec, device=device)


def _check_split(split: str) -> None:
    if split not in ("dev", "held-out"):
        raise ConfigError(f"--split: dev or held-out, not {split!r}")


def suffix_id_report(recipe, params: RankGenParams, scorers: Sequence[str], split: str = "held-out",
                     per_prefix: bool = False, show_progress: bool = True, part: tuple[int, int] = (1, 1)) -> dict:
    """``{scorer spec: suffix identification result}`` on the same candidate sets of ``split``; ``part``
    ``(k, n)``: only the k-th of n contiguous slices of them (a slow scorer measured in several runs)."""
    from embedkit.generative.suffix_id import suffix_identification

    _check_split(split)
    k, n = part
    if not 1 <= k <= n:
        raise ConfigError(f"part: {k}/{n} is not one of 1/{n} .. {n}/{n}")
    data = load_data(recipe, params, splits=[split], show_progress=show_progress)
    sets = eval_sets(data, params, split)
    sets = sets[(k - 1) * len(sets) // n:k * len(sets) // n]
    return {spec: suffix_identification(load_any_scorer(spec, params.sampling.max_prefix_tokens), sets,
                                        per_prefix=per_prefix, show_progress=show_progress)
            for spec in scorers}


def decoding_report(recipe, params: RankGenParams, scorer: str, lm: str = "default", prefixes: int = 100,
                    samples: int = 8, beam=None, seed: int = 0, split: str = "held-out", sampling=None,
                    device: str | None = None) -> dict:
    """:func:`embedkit.generative.decoding_eval.compare_decoding` on the first ``prefixes`` prefixes of
    ``split`` (each with its true continuation as the reference); sampling as for the LM negatives
    unless ``sampling`` is given."""
    from embedkit.generative.decoding_eval import compare_decoding
    from embedkit.generative.lm import load_causal_lm
    from embedkit.generative.rankgen import load_scorer

    _check_split(split)
    data = load_data(recipe, params, splits=[])
    examples = data.examples[split][:prefixes]
    return compare_decoding(load_causal_lm(lm, device=device), load_scorer(scorer, device=device), [e.prefix for e in examples],
                            [e.suffix for e in examples], samples, sampling or params.sampling, beam, seed)
