"""The moe method end to end on the tiny model: per-domain data, routed training, evaluation, save/load."""
from __future__ import annotations

import json

import pytest
import yaml

from embedkit.cli.main import main
from embedkit.errors import ConfigError
from embedkit.training import run_recipe, validate_recipe
from embedkit.training.collapse import CollapseError
from embedkit.training.moe import domain_pairs, snli_triplets

SNLI = [  # premise, hypothesis, label
    ("A man plays a guitar .", "A person makes music .", "entailment"),
    ("A man plays a guitar .", "A man sleeps .", "contradiction"),
    ("A man plays a guitar .", "A man plays a song he wrote .", "neutral"),
    ("Two dogs run on grass .", "Animals are outside .", "entailment"),
    ("Two dogs run on grass .", "Dogs are running .", "entailment"),
    ("Two dogs run on grass .", "The cats sit indoors .", "contradiction"),
    ("A child eats bread .", "Someone is eating .", "entailment"),
]


def write_snli(folder, rows=SNLI, splits=("dev", "test")):
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for index, name in enumerate(("s1", "s2", "labels")):
            (folder / f"{name}.{split}").write_text("".join(f"{r[index]}\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture()
def moe_recipe(tiny_recipe, data_dir):
    write_snli(data_dir / "snli")
    stsb = data_dir / "stsb"
    (stsb / "sts-test.csv").write_bytes((stsb / "sts-dev.csv").read_bytes())  # a test split for the final run

    def build(**params) -> dict:
        domains = [
            {"name": "science", "kind": "beir", "path": "beir", "split": "train",
             "eval": {"kind": "beir", "path": "beir", "split": "train"}},
            {"name": "news", "kind": "sts", "path": "stsb", "genres": ["main-news"], "min_score": 4.0,
             "eval": {"kind": "sts", "path": "stsb", "split": "dev", "genres": ["main-news"]},
             "test": {"kind": "sts", "path": "stsb", "split": "test", "genres": ["main-news"]}},
            {"name": "captions", "kind": "sts", "path": "stsb", "genres": ["main-captions"], "min_score": 0,
             "eval": {"kind": "sts", "path": "stsb", "split": "dev", "genres": ["main-captions"]}},
            {"name": "nli", "kind": "nli", "path": "snli",
             "test": {"kind": "triplets", "path": "snli", "split": "test"}},
        ]
        recipe = tiny_recipe(method="moe", max_steps=4, save_steps=100, eval={"sets": [], "before": True, "batch_size": 8},
                             params={"domains": domains, **params})
        del recipe["data"]  # the domains bring their own data
        return recipe

    return build


def test_domain_data_builders(data_dir):
    write_snli(data_dir / "snli")
    from embedkit.training.moe import DomainSpec

    news = domain_pairs(DomainSpec(name="n", kind="sts", path="stsb", genres=["main-news"], min_score=4.0))
    assert news == [("A man is playing a guitar.", "A person plays a guitar."),
                    ("A woman is slicing an onion.", "A woman cuts an onion."),
                    ("A plane is taking off.", "An airplane departs.")]
    forum = domain_pairs(DomainSpec(name="f", kind="sts", path="stsb", genres=["main-forum"], min_score=0))
    assert len(forum) == 2  # train's "main-forum" and dev/test's "main-forums" are one genre
    nli = domain_pairs(DomainSpec(name="x", kind="nli", path="snli"))
    assert ("Two dogs run on grass .", "Dogs are running .") in nli and len(nli) == 4
    assert snli_triplets(data_dir / "snli", "test") == [
        ("A man plays a guitar .", "A person makes music .", "A man sleeps ."),
        ("Two dogs run on grass .", "Animals are outside .", "The cats sit indoors ."),
        ("Two dogs run on grass .", "Dogs are running .", "The cats sit indoors ."),
    ]


def test_moe_trains_routes_evaluates_and_saves(moe_recipe, tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedkit.modules import model_domains

    result = run_recipe(validate_recipe(moe_recipe()), tmp_path / "out")
    assert result.steps == 4
    expected = {"science:beir-train", "news:stsb-dev-main-news", "captions:stsb-dev-main-captions", "all:stsb-dev"}
    assert set(result.after) == expected and set(result.before) == expected  # no test set outside the final run
    assert result.headline["science:beir-train"] == "ndcg@10"
    model = SentenceTransformer(str(tmp_path / "out"), trust_remote_code=True, device="cpu")
    assert model_domains(model) == ["science", "news", "captions", "nli"]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["steps"] == 4


def test_eval_steps_scores_every_domain_during_training(moe_recipe, tmp_path):
    recipe = moe_recipe(only=["news", "science"])
    recipe["eval"].update(steps=2, before=False)
    result = run_recipe(validate_recipe(recipe), tmp_path / "out")
    evaluated = [e for e in result.during if any(k.startswith("eval_") for k in e)]
    assert [e["step"] for e in evaluated] == [2, 4]
    assert {"eval_news:stsb-dev-main-news_spearman", "eval_science:beir-train_ndcg@10"} <= set(evaluated[-1])
    assert any("embedding_spread" in e for e in result.during)  # the collapse guard's entries stay
    assert not (tmp_path / "out" / "eval").exists()


def test_final_run_scores_test_sets_before_and_after_never_during(moe_recipe, tmp_path):
    recipe = moe_recipe(only=["news", "nli"])
    recipe["eval"].update(steps=2, final=True)
    result = run_recipe(validate_recipe(recipe), tmp_path / "out")
    expected = {"news:stsb-dev-main-news", "news:stsb-test-main-news", "nli:snli-test"}
    assert set(result.before) == expected and set(result.after) == expected
    assert result.headline["nli:snli-test"] == "accuracy"
    during = {k for e in result.during for k in e if k.startswith("eval_")}
    assert "eval_news:stsb-dev-main-news_spearman" in during and not any("test" in k for k in during)


def test_a_test_split_is_not_what_the_recipe_is_chosen_on(moe_recipe):
    recipe = moe_recipe()
    recipe["params"]["domains"][1]["eval"]["split"] = "test"
    with pytest.raises(ConfigError, match="domain 'news': eval is what the recipe is chosen on, so not a test split"):
        validate_recipe(recipe)


def test_separate_row_is_scored_and_recorded(moe_recipe, tmp_path, capsys):
    from embedkit.records import load_record
    from embedkit.training.moe import main as separate_main

    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(moe_recipe(architecture="dense")), encoding="utf-8")
    folders = {}
    for domain in ("news", "nli"):
        folders[domain] = tmp_path / domain
        assert main(["train", str(path), "--out", str(folders[domain]), "--set", f"params.only=[{domain}]",
                     "--set", "max_steps=2", "--no-eval"]) == 0
    capsys.readouterr()
    models = [f"{name}={folder}" for name, folder in folders.items()]
    assert separate_main([str(path), *models, "--set", "eval.final=true", "--record", str(tmp_path / "sep.json")]) == 0
    record = load_record(tmp_path / "sep.json")
    assert set(record["metrics"]["after"]) == {"news:stsb-dev-main-news", "news:stsb-test-main-news", "nli:snli-test"}
    assert record["metrics"]["after"] == json.loads(capsys.readouterr().out)
    runs = [json.loads((folder / "results.json").read_text()) for folder in folders.values()]
    assert record["metrics"]["train_seconds"] == round(sum(run["train_seconds"] for run in runs), 1)
    assert record["metrics"]["steps"] == {"news": 2, "nli": 2}
    assert separate_main([str(path), "law=" + str(folders["news"])]) == 2
    assert "unknown domain(s) law" in capsys.readouterr().err


def test_dense_and_only_give_the_baselines(moe_recipe, tmp_path):
    from embedkit.modules import is_moe

    result = run_recipe(validate_recipe(moe_recipe(architecture="dense", only=["news"])), tmp_path / "sep")
    assert set(result.after) == {"news:stsb-dev-main-news"}
    from sentence_transformers import SentenceTransformer

    assert not is_moe(SentenceTransformer(str(tmp_path / "sep"), device="cpu"))


def test_collapse_stops_the_run(moe_recipe, tmp_path):
    recipe = validate_recipe(moe_recipe(collapse_threshold=0.999, collapse_patience=1))
    with pytest.raises(CollapseError, match="embeddings collapsed"):
        run_recipe(recipe, tmp_path / "c")
    assert not (tmp_path / "c" / "model.safetensors").exists()


def test_bad_params_are_one_line(moe_recipe):
    with pytest.raises(ConfigError, match="only: unknown domain"):
        validate_recipe(moe_recipe(only=["law"]))
    with pytest.raises(ConfigError, match="params.domains.0.kind"):
        recipe = moe_recipe()
        recipe["params"]["domains"][0]["kind"] = "video"
        validate_recipe(recipe)


def test_check_reads_every_domain(moe_recipe, tmp_path, capsys):
    from embedkit.training.moe import MoEParams

    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(moe_recipe()), encoding="utf-8")
    assert main(["train", str(path), "--check"]) == 0
    pairs = sum(len(domain_pairs(d)) for d in MoEParams.model_validate(moe_recipe()["params"]).domains)
    assert f"# ok: {pairs} training examples, 3 evaluation set(s)" in capsys.readouterr().out


def test_cli_runs_the_moe_recipe(moe_recipe, tmp_path, capsys):
    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(moe_recipe(learned_router=True)), encoding="utf-8")
    assert main(["train", str(path), "--out", str(tmp_path / "cli"), "--set", "max_steps=2"]) == 0
    assert "2 steps" in capsys.readouterr().out
    assert (tmp_path / "cli" / "domain_router.safetensors").is_file()
