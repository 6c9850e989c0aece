"""Both recipes end to end through ``embedkit train`` on tiny models and tiny data files."""
from __future__ import annotations

import json

import pytest


def _write_corpus(folder, n=40):
    """A BEIR corpus folder of abstracts whose sentences name their document and position."""
    folder.mkdir()
    rows = [{"_id": f"doc{i}", "title": "", "text": " ".join(f"Study {i} reports finding number {j}." for j in range(7))}
            for i in range(n)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _write_nli(path, n=12, offset=0):
    rows = ["sent0,sent1,hard_neg"] + [f"a man rides horse {i},a person rides an animal {i},nobody rides {i}"
                                        for i in range(offset, offset + n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_rankgen_recipe_through_embedkit_train(tmp_path, tiny_model_dir, tiny_lm_dir, capsys):
    from embedkit.cli.main import main
    from embedkit.models import load_model

    corpus = _write_corpus(tmp_path / "corpus")
    recipe = tmp_path / "rankgen.yaml"
    recipe.write_text(f"""
model: {tiny_model_dir}
method: rankgen
data: {{kind: beir, path: {corpus}}}
batch_size: 4
max_steps: 4
save_steps: 1000
eval: {{steps: 2}}
params:
  train_examples_per_document: 2
  held_out_fraction: 0.2
  dev_fraction: 0.3
  negatives: {{in_document: 1, lm_generated: 1}}
  eval_candidates: {{in_document: 2, lm_generated: 1}}
  lm_negatives_per_training_prefix: 1
  lm: {tiny_lm_dir}
  sampling: {{max_new_tokens: 4}}
  negatives_dir: {tmp_path / 'negatives'}
""")
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for side in ("before", "after"):
        sid = results[side]["suffix-id-dev"]
        assert 0 <= sid["accuracy_all"] <= 100 and sid["candidates_all"] == 4 and sid["candidates_in_document"] == 3
    assert [e["step"] for e in results["during"]] == [2, 4]
    assert all("eval_suffix-id-dev_accuracy_all" in e for e in results["during"])
    # only the training and dev prefixes got LM negatives: held-out is left for the final measurement
    assert sorted(p.name for p in (tmp_path / "negatives").iterdir()) == ["dev", "train"]
    model = load_model(str(out))
    assert model.prompts["prefix"] == "pre " and model.prompts["suffix"] == "suffi "
    capsys.readouterr()
    assert main(["rankgen", "suffix-id", str(recipe), "--scorer", str(out), "--scorer", f"lm:{tiny_lm_dir}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == [str(out), f"lm:{tiny_lm_dir}"]
    assert report[str(out)]["n_prefixes"] == report[f"lm:{tiny_lm_dir}"]["n_prefixes"] > 0
    assert main(["rankgen", "suffix-id", str(recipe), "--scorer", str(tmp_path / "missing")]) == 2
    assert main(["rankgen", "compare", str(recipe), "--scorer", str(out), "--lm", str(tiny_lm_dir), "--prefixes", "2",
                 "--samples", "2", "--max-new-tokens", "4", "--beam", "--rescore-every", "2"]) == 0
    compare = json.loads(capsys.readouterr().out)
    assert set(compare) >= {"gold", "nucleus", "rankgen_rerank", "rankgen_beam"}
    assert compare["rankgen_rerank"]["rankgen_score"] >= compare["nucleus"]["rankgen_score"] - 1e-6


def test_rankgen_mix_needs_enough_generated_negatives(tmp_path, tiny_model_dir):
    from embedkit.cli.main import main

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"""
model: {tiny_model_dir}
method: rankgen
data: {{kind: beir, path: {_write_corpus(tmp_path / 'c', 5)}}}
params: {{negatives: {{in_document: 1, lm_generated: 3}}, lm_negatives_per_training_prefix: 2}}
""")
    assert main(["train", str(recipe), "--check"]) == 2


def test_grace_recipe_writes_its_curve_as_it_goes_and_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    import embedkit.generative.grace_train as gt
    from embedkit.cli.main import main
    from embedkit.generative.grace import GraceEncoder
    from embedkit.models import load_model

    nli, dev = _write_nli(tmp_path / "nli.csv"), _write_nli(tmp_path / "dev.csv", 4, offset=100)
    recipe = tmp_path / "grace.yaml"
    recipe.write_text(f"""
model: {tiny_lm_dir}
method: grace
data: {{kind: nli, path: {nli}}}
batch_size: 2
max_steps: 4
save_steps: 1
learning_rate: 1.0e-3
params:
  max_input_tokens: 12
  max_rationale_tokens: 4
  lora: {{r: 2, alpha: 4}}
  group_size: 2
  held_out: [{{kind: nli, path: {dev}}}]
  held_out_pairs: 4
  held_out_every: 2
""")
    out = tmp_path / "out"
    real_step = gt.policy_step

    def interrupted(encoder, optimizer, pairs, *args, **kwargs):
        assert not {q for q, _ in pairs} & {f"a man rides horse {i}" for i in range(100, 104)}  # dev never trains
        if interrupted.calls == 3:
            raise KeyboardInterrupt
        interrupted.calls += 1
        return real_step(encoder, optimizer, pairs, *args, **kwargs)

    interrupted.calls = 0
    monkeypatch.setattr(gt, "policy_step", interrupted)
    assert main(["train", str(recipe), "--out", str(out)]) == 130  # interrupted after step 3
    curve = [json.loads(line) for line in (out / "reward_curve.jsonl").read_text().splitlines()]
    assert [e["step"] for e in curve] == [0, 2]  # on disk before the run ended
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [0, 1, 2, 3]

    monkeypatch.setattr(gt, "policy_step", real_step)
    assert main(["train", str(recipe), "--out", str(out), "--resume"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [0, 1, 2, 3, 4]
    curve = [json.loads(line) for line in (out / "reward_curve.jsonl").read_text().splitlines()]
    assert [e["step"] for e in curve] == [0, 2, 4] and all("held_out_reward" in e for e in curve)
    assert (out / "checkpoint-4" / "trainer_state.json").exists()
    model = load_model(str(out))
    assert isinstance(model, GraceEncoder) and model.encode(["a man rides"]).shape == (1, 32)


def test_grace_pairs_from_sts_keep_the_high_scores_and_batch_by_source(tmp_path):
    from embedkit.generative.grace_train import PairSource, batches, load_pair_source

    sts = tmp_path / "sts-train.csv"
    sts.write_text("".join(f"main-captions\tMSRvid\t2012\t{i}\t{score}\tleft {i}\tright {i}\n"
                           for i, score in enumerate([4.5, 1.0, 4.0, 3.9, 5.0])))
    pairs = load_pair_source(PairSource(kind="sts", path=str(tmp_path), split="train", min_score=4.0))
    assert pairs == [("left 0", "right 0"), ("left 2", "right 2"), ("left 4", "right 4")]
    with pytest.raises(ValueError, match="min_score"):
        PairSource(kind="sts", path=str(tmp_path), split="train")
    a = [(f"a{i}", f"A{i}") for i in range(9)]
    b = [(f"b{i}", f"B{i}") for i in range(4)] + [("b0", "B9")]  # a repeated query must not share a batch
    out = batches([a, b], 2, seed=0, epoch=0)
    assert len(out) == 4 + 2
    for batch in out:
        assert len({q[0] for q, _ in batch}) == 1 and len({q for q, _ in batch}) == 2
    assert batches([a, b], 2, seed=0, epoch=0) == out != batches([a, b], 2, seed=0, epoch=1)


@pytest.mark.e2e
def test_generate_default_lm_with_and_without_scorer(capsys):
    from embedkit.cli.main import main

    for extra in ([], ["--scorer", "default"]):
        assert main(["generate", "--lm", "default", "--prefix", "The river flows", "--samples", "2",
                     "--max-new-tokens", "6", *extra]) == 0
        assert "[2]" in capsys.readouterr().out
