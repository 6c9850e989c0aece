"""Both recipes end to end through ``embedkit train`` on tiny models and tiny data files."""
from __future__ import annotations

import json

import pytest


def _write_wiki(path, n=48):
    lines = [f"Topic {i // 8} sentence {i % 8} says something about item {i}." for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_nli(path, n=12):
    rows = ["sent0,sent1,hard_neg"] + [f"a man rides horse {i},a person rides an animal {i},nobody rides {i}"
                                        for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_rankgen_recipe_through_embedkit_train(tmp_path, tiny_model_dir, tiny_lm_dir, capsys):
    from embedkit.cli.main import main
    from embedkit.models import load_model

    wiki = _write_wiki(tmp_path / "wiki.txt")
    recipe = tmp_path / "rankgen.yaml"
    recipe.write_text(f"""
model: {tiny_model_dir}
method: rankgen
data: {{kind: sentences, path: {wiki}}}
batch_size: 4
epochs: 1
save_steps: 1000
params:
  corpus: null
  sentences_per_document: 8
  in_doc_negatives: 1
  lm_negatives: 1
  lm: {tiny_lm_dir}
  sampling: {{max_new_tokens: 4}}
  negatives_dir: {tmp_path / 'negatives'}
  held_out_fraction: 0.3
""")
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (tmp_path / "negatives" / "train" / "manifest.json").exists()
    model = load_model(str(out))
    assert model.prompts["prefix"] == "pre " and model.prompts["suffix"] == "suffi "
    capsys.readouterr()
    for side, scorer in (("before", tiny_model_dir), ("after", out)):
        sid = results[side]["suffix-id-held-out"]
        assert sid["candidates_all"] == 3 and sid["n_prefixes"] > 0
        # a whole number of held-out prefixes, and the same figure when the saved scorer is measured again
        hits = sid["accuracy_all"] * sid["n_prefixes"] / 100
        assert hits == pytest.approx(round(hits))
        assert main(["rankgen", "suffix-id", str(recipe), "--scorer", str(scorer)]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["accuracy_all"] == round(sid["accuracy_all"], 2) and again["n_prefixes"] == sid["n_prefixes"]


def test_grace_recipe_through_embedkit_train_and_resume(tmp_path, tiny_lm_dir):
    from embedkit.cli.main import main
    from embedkit.generative.grace import GraceEncoder
    from embedkit.models import load_model

    nli = _write_nli(tmp_path / "nli.csv")
    recipe = tmp_path / "grace.yaml"
    recipe.write_text(f"""
model: {tiny_lm_dir}
method: grace
data: {{kind: nli, path: {nli}}}
batch_size: 2
max_steps: 2
save_steps: 1
learning_rate: 1.0e-3
params:
  max_input_tokens: 12
  max_rationale_tokens: 4
  lora: {{r: 2, alpha: 4}}
  group_size: 2
  held_out_pairs: 4
  held_out_every: 1
""")
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--out", str(out)]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [0, 1, 2] and all("held_out_reward" in e for e in log)
    assert (out / "checkpoint-1" / "trainer_state.json").exists()
    model = load_model(str(out))
    assert isinstance(model, GraceEncoder) and model.encode(["a man rides"]).shape == (1, 32)
    # a longer run resumes from the last complete checkpoint
    assert main(["train", str(recipe), "--out", str(out), "--resume", "--set", "max_steps=3"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log][-1] == 3


@pytest.mark.e2e
def test_generate_default_lm_with_and_without_scorer(capsys):
    from embedkit.cli.main import main

    for extra in ([], ["--scorer", "default"]):
        assert main(["generate", "--lm", "default", "--prefix", "The river flows", "--samples", "2",
                     "--max-new-tokens", "6", *extra]) == 0
        assert "[2]" in capsys.readouterr().out
