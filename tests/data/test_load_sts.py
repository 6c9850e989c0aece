"""STS loaders on small files written in the exact upstream formats, and every bad-input message."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedkit.data import STSPair, load_sts, normalize_genre
from embedkit.errors import DataError

# Real STS-B lines: 7 fields, 9 fields (two trailing source columns), unescaped quotes, integer scores.
STSB_LINES = [
    "main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl is styling her hair.\tA girl is brushing her hair.",
    'main-news\tMSRpar\t2012test\t0070\t3.750\t"We believe we are fully prepared to roll out the [touch-screen] '
    'machines for the 2004 presidential primary," said Gilles W. Burger, State Board of Elections chairman.\t'
    '"We believe we are fully prepared to roll out the revised Diebold machines," said Gilles W. Burger, '
    "chairman of the Maryland State Board of Elections.",
    "main-forums\tanswer-answer\t2016\t0142\t4\tThe rule - When in doubt throw it out!\t"
    'I always go by the rule "When in doubt, throw it out!\tStackExchange Network: '
    "http://cooking.stackexchange.com/questions/34086 Author: user36870\tStackExchange Network: "
    "http://cooking.stackexchange.com/questions/28293 Author: Elizabeth Rall",
]

SICK_FULL_HEADER = ("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\t"
                    "entailment_BA\tsentence_A_original\tsentence_B_original\tsentence_A_dataset\t"
                    "sentence_B_dataset\tSemEval_set")
SICK_FULL_ROWS = [
    "1\tA group of kids is playing in a yard and an old man is standing in the background\tA group of boys in a "
    "yard is playing and a man is standing in the background\tNEUTRAL\t4.5\tA_neutral_B\tB_neutral_A\t"
    "A group of children playing in a yard, a man in the background.\tA group of children playing in a yard, a "
    "man in the background.\tFLICKR\tFLICKR\tTRAIN",
    "2\tA group of children is playing in the house and there is no man standing in the background\tA group of "
    "kids is playing in a yard and an old man is standing in the background\tNEUTRAL\t3.2\tA_contradicts_B\t"
    "B_neutral_A\tA group of children playing in a yard, a man in the background.\tA group of children playing "
    "in a yard, a man in the background.\tFLICKR\tFLICKR\tTRIAL",
    "6\tThere is no boy playing outdoors and there is no man smiling\tA group of kids is playing in a yard and an "
    "old man is standing in the background\tNEUTRAL\t3.3\tA_neutral_B\tB_neutral_A\tA brown dog is attacking "
    "another animal in front of the tall man in pants.\tA brown dog is attacking another animal in front of the "
    "man in pants.\tFLICKR\tFLICKR\tTEST",
    "7\tA brown dog is attacking another animal in front of the man in pants\tTwo dogs are fighting\tENTAILMENT\t"
    "3.5\tA_entails_B\tB_neutral_A\tA brown dog is attacking another animal in front of the man in pants.\tTwo "
    "dogs are fighting.\tFLICKR\tFLICKR\tTEST",
]
SICK_TEST_ANNOTATED = [
    "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment",
    "6\tThere is no boy playing outdoors and there is no man smiling\tA group of kids is playing in a yard and an "
    "old man is standing in the background\t3.3\tNEUTRAL",
    "7\tA group of boys in a yard is playing and a man is standing in the background\tThe young boys are playing "
    "outdoors and the man is smiling nearby\t3.7\tNEUTRAL",
]


def write(path: Path, lines: list[str], eol: str = "\n", final_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((eol.join(lines) + (eol if final_newline else "")).encode("utf-8"))
    return path


def error_of(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- STS-B -----------------------------------------------------------------------------------------------

def test_stsb_file_7_and_9_fields_with_unescaped_quotes(tmp_path):
    ds = load_sts(write(tmp_path / "sts-test.csv", STSB_LINES))
    assert ds.name == "stsb-test" and len(ds) == 3 and ds.subsets is None
    assert ds.pairs[0] == STSPair("A girl is styling her hair.", "A girl is brushing her hair.", 2.5, "main-captions")
    assert ds.pairs[1].sentence1.startswith('"We believe') and ds.pairs[1].sentence1.endswith("chairman.")
    assert ds.pairs[1].sentence2.endswith("Maryland State Board of Elections.")
    assert ds.pairs[2].score == 4.0 and ds.pairs[2].sentence2 == 'I always go by the rule "When in doubt, throw it out!'
    assert ds.scores == [2.5, 3.75, 4.0] and ds.sentences1[0] == "A girl is styling her hair."


def test_stsb_crlf_and_no_final_newline(tmp_path):
    ds = load_sts(write(tmp_path / "sts-dev.csv", STSB_LINES, eol="\r\n", final_newline=False))
    assert [p.score for p in ds.pairs] == [2.5, 3.75, 4.0]
    assert not any(p.sentence2.endswith("\r") for p in ds.pairs)


def test_stsb_folder_split_and_genres(tmp_path):
    write(tmp_path / "stsb" / "sts-test.csv", STSB_LINES)
    train_line = STSB_LINES[0].replace("main-captions", "main-forum")
    write(tmp_path / "stsb" / "sts-train.csv", [train_line, STSB_LINES[2]])
    assert len(load_sts(tmp_path / "stsb")) == 3  # split defaults to test
    train = load_sts(tmp_path / "stsb", split="train")
    assert [p.genre for p in train.pairs] == ["main-forum", "main-forums"]  # raw values kept
    assert list(train.by_genre()) == ["main-forums"] and len(train.by_genre()["main-forums"]) == 2
    assert list(train.by_genre(normalize=False)) == ["main-forum", "main-forums"]
    assert normalize_genre("main-forum") == "main-forums" and normalize_genre("main-news") == "main-news"
    msg = error_of(load_sts, tmp_path / "stsb", "dev")
    assert "sts-dev.csv" in msg and "sts-test.csv, sts-train.csv" in msg


def test_stsb_relative_path_resolves_against_embedkit_data(tmp_path, monkeypatch):
    write(tmp_path / "data" / "stsb" / "sts-test.csv", STSB_LINES)
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert len(load_sts("stsb", "test")) == 3 and len(load_sts("stsb/sts-test.csv")) == 3


@pytest.mark.parametrize("line_number, bad_line, field, words", [
    (2, "main-news\tMSRpar\t2012test\t0070\t3.750\tonly one sentence", "sentence2", "too few fields"),
    (2, "main-news\tMSRpar\t2012test\t0070\tabout 3\tA man.\tA woman.", "score", "not a number"),
    (2, "main-news\tMSRpar\t2012test\t0070\tnan\tA man.\tA woman.", "score", "finite"),
])
def test_stsb_bad_lines_name_file_line_field(tmp_path, line_number, bad_line, field, words):
    path = write(tmp_path / "sts-test.csv", [STSB_LINES[0], bad_line, STSB_LINES[2]])
    msg = error_of(load_sts, path)
    assert str(path) in msg and f"line {line_number}" in msg and f"field '{field}'" in msg and words in msg


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "sts-test.csv"
    path.write_bytes((STSB_LINES[0] + "\n").encode() + b"main-news\tMSRpar\t2012\t1\t1.0\tcaf\xe9\tcafe\n")
    msg = error_of(load_sts, path)
    assert str(path) in msg and "line 2" in msg and "UTF-8" in msg


def test_empty_stsb_file(tmp_path):
    path = write(tmp_path / "sts-test.csv", [], final_newline=False)
    msg = error_of(load_sts, path)
    assert str(path) in msg and "empty" in msg


def test_missing_path_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    msg = error_of(load_sts, str(tmp_path / "nope" / "sts-test.csv"))
    assert "nope" in msg and "no such file" in msg


# --- SICK ------------------------------------------------------------------------------------------------

def test_sick_txt_split_by_semeval_set(tmp_path):
    path = write(tmp_path / "SICK.txt", [SICK_FULL_HEADER] + SICK_FULL_ROWS, eol="\r\n", final_newline=False)
    test = load_sts(path)  # default split: test
    assert [p.score for p in test.pairs] == [3.3, 3.5] and test.name == "SICK-test"
    assert test.pairs[1] == STSPair("A brown dog is attacking another animal in front of the man in pants",
                                    "Two dogs are fighting", 3.5)
    assert [p.score for p in load_sts(path, "TRAIN").pairs] == [4.5]
    assert [p.score for p in load_sts(path, "trial").pairs] == [3.2]
    assert [p.score for p in load_sts(path, "dev").pairs] == [3.2]
    assert len(load_sts(path, "all")) == 4
    msg = error_of(load_sts, path, "heldout")
    assert str(path) in msg and "field 'split'" in msg and "trial" in msg


def test_sick_folder_finds_sick_txt(tmp_path):
    write(tmp_path / "sick" / "SICK.txt", [SICK_FULL_HEADER] + SICK_FULL_ROWS)
    assert len(load_sts(tmp_path / "sick", "train")) == 1


def test_sick_test_annotated(tmp_path):
    path = write(tmp_path / "SICK_test_annotated.txt", SICK_TEST_ANNOTATED)
    ds = load_sts(path, "test")
    assert ds.scores == [3.3, 3.7] and ds.pairs[0].sentence1.startswith("There is no boy")
    assert load_sts(tmp_path).scores == [3.3, 3.7]  # a folder of the SemEval 2014 files
    msg = error_of(load_sts, tmp_path, "train")
    assert "SICK_train.txt" in msg


def test_sick_bad_score_and_short_row(tmp_path):
    rows = SICK_TEST_ANNOTATED[:2] + ["7\tA man is talking\tA man is speaking\tvery\tNEUTRAL"]
    path = write(tmp_path / "SICK_test_annotated.txt", rows)
    msg = error_of(load_sts, path)
    assert str(path) in msg and "line 3" in msg and "field 'relatedness_score'" in msg
    path = write(tmp_path / "SICK_test_annotated.txt", SICK_TEST_ANNOTATED[:2] + ["8\tA man is talking"])
    msg = error_of(load_sts, path)
    assert "line 3" in msg and "field 'sentence_B'" in msg and "too few fields" in msg


# --- SentEval STS12-16 -----------------------------------------------------------------------------------

def make_senteval(folder: Path) -> Path:
    # STS16-style inputs carry 2 extra trailing source fields; the gold file has an empty (unscored) line.
    write(folder / "STS.input.headlines.txt", [
        "Israel, Hamas agree to ceasefire\tIsrael and Hamas agree to a truce\tsrc1\tsrc2",
        "Obama signs budget deal\tTrump visits Asia\tsrc1\tsrc2",
        "Stocks rise on Fed hopes\tStocks fall as Fed holds\tsrc1\tsrc2",
    ], eol="\r\n", final_newline=False)
    write(folder / "STS.gs.headlines.txt", ["4.6", "", "1.2"], eol="\r\n", final_newline=False)
    write(folder / "STS.input.answer-answer.txt", ["You need a permit.\tA permit is required."])
    write(folder / "STS.gs.answer-answer.txt", ["5"])
    write(folder / "00-readme.txt", ["not data"])
    return folder


def test_senteval_year_folder(tmp_path):
    ds = load_sts(make_senteval(tmp_path / "STS16-en-test"))
    assert ds.name == "STS16-en-test"
    assert list(ds.subsets) == ["answer-answer", "headlines"]
    assert [p.score for p in ds.subsets["headlines"]] == [4.6, 1.2]  # the unscored pair is skipped
    assert ds.subsets["headlines"][0] == STSPair("Israel, Hamas agree to ceasefire",
                                                 "Israel and Hamas agree to a truce", 4.6, "headlines")
    assert ds.pairs == ds.subsets["answer-answer"] + ds.subsets["headlines"]


def test_senteval_bad_gold_and_counts(tmp_path):
    folder = make_senteval(tmp_path / "STS16")
    write(folder / "STS.gs.headlines.txt", ["4.6", "", "high"])
    msg = error_of(load_sts, folder)
    assert "STS.gs.headlines.txt" in msg and "line 3" in msg and "field 'score'" in msg
    write(folder / "STS.gs.headlines.txt", ["4.6", ""])
    msg = error_of(load_sts, folder)
    assert "STS.input.headlines.txt" in msg and "3 lines" in msg and "has 2" in msg
    (folder / "STS.gs.headlines.txt").unlink()
    assert "STS.gs.headlines.txt" in error_of(load_sts, folder)


def test_senteval_short_input_line(tmp_path):
    folder = make_senteval(tmp_path / "STS16")
    write(folder / "STS.input.answer-answer.txt", ["You need a permit."])
    msg = error_of(load_sts, folder)
    assert "STS.input.answer-answer.txt" in msg and "line 1" in msg and "field 'sentence2'" in msg


# --- generic CSV / TSV / JSONL ---------------------------------------------------------------------------

def test_generic_csv_tsv_jsonl(tmp_path):
    csv_path = write(tmp_path / "pairs.csv", ['sentence1,sentence2,score,extra',
                                              '"A man, smiling.",A man smiles.,4.5,x', 'A cat.,A dog.,1,y'],
                     eol="\r\n", final_newline=False)
    assert load_sts(csv_path).pairs == [STSPair("A man, smiling.", "A man smiles.", 4.5), STSPair("A cat.", "A dog.", 1.0)]
    tsv_path = write(tmp_path / "pairs.tsv", ["sentence1\tsentence2\tscore", 'He said "hi".\tHe greeted.\t3.0\textra'])
    assert load_sts(tsv_path).pairs == [STSPair('He said "hi".', "He greeted.", 3.0)]
    jsonl_path = write(tmp_path / "pairs.jsonl", [json.dumps({"sentence1": "a", "sentence2": "b", "score": 2}), "",
                                                  json.dumps({"sentence1": "c", "sentence2": "d", "score": "0.5",
                                                              "genre": "news"})])
    ds = load_sts(jsonl_path)
    assert ds.scores == [2.0, 0.5] and ds.pairs[1].genre == "news" and ds.name == "pairs"


def test_generic_folder_with_split_files(tmp_path):
    write(tmp_path / "mysts" / "dev.tsv", ["sentence1\tsentence2\tscore", "a\tb\t1"])
    assert load_sts(tmp_path / "mysts", "dev").scores == [1.0]
    msg = error_of(load_sts, tmp_path / "mysts")
    assert "test.csv" in msg and str(tmp_path / "mysts") in msg


def test_generic_bad_inputs(tmp_path):
    path = write(tmp_path / "p.jsonl", [json.dumps({"sentence1": "a", "sentence2": "b", "score": 1}), '{"sentence1": "a",'])
    msg = error_of(load_sts, path)
    assert str(path) in msg and "line 2" in msg and "invalid JSON" in msg
    path = write(tmp_path / "p2.jsonl", [json.dumps({"sentence1": "a", "sentence2": "b", "score": 1}),
                                         json.dumps({"sentence1": "a", "score": 1})])
    msg = error_of(load_sts, path)
    assert "line 2" in msg and "field 'sentence2'" in msg
    path = write(tmp_path / "p.csv", ["sentence1,sentence2,score", "a,b,1", "c,d,x"])
    msg = error_of(load_sts, path)
    assert "line 3" in msg and "field 'score'" in msg and "'x'" in msg
    path = write(tmp_path / "p.tsv", ["sentence1\tsentence2\tscore", "a\tb"])
    msg = error_of(load_sts, path)
    assert "line 2" in msg and "field 'score'" in msg and "too few fields" in msg
    path = write(tmp_path / "nohead.csv", ["a,b,1", "c,d,2"])
    msg = error_of(load_sts, path)
    assert str(path) in msg and "line 1" in msg and "sentence1,sentence2,score" in msg
    path = write(tmp_path / "onlyhead.csv", ["sentence1,sentence2,score"])
    assert "empty dataset" in error_of(load_sts, path)
    path = write(tmp_path / "data.parquet", ["x"])
    assert "unknown file type" in error_of(load_sts, path)
