"""The recipe's evaluation sets: BEIR subsets for evaluation during training, and the --check command."""
from __future__ import annotations

from embedkit.cli.main import main as cli_main
from embedkit.data import load_beir
from embedkit.training.evaluation import subset_beir


def test_beir_subset_keeps_judged_documents_of_kept_queries(data_dir):
    full = load_beir(data_dir / "beir", split="train")
    cut = subset_beir(full, max_queries=2, max_documents=4, seed=1)
    assert len(cut.queries) == 2 and set(cut.qrels) <= set(cut.queries)
    judged = {d for docs in cut.qrels.values() for d in docs}
    assert judged <= set(cut.corpus) and len(cut.corpus) == 4
    assert subset_beir(full, None, None) is full
    assert subset_beir(full, 2, 4, seed=1) == cut  # seeded


def test_check_validates_recipe_and_data_without_training(recipe_file, tmp_path, capsys):
    sets = [{"kind": "beir", "path": "beir", "split": "train", "max_queries": 2}]
    code = cli_main(["train", str(recipe_file(eval={"sets": sets})), "--check", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "# ok: 96 training examples, 1 evaluation set(s)" in out and "name: infonce" in out
    assert not (tmp_path / "out").exists()
