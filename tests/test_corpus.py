"""data.corpus: unlabelled text the teacher labels, added to the training split or in its place."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from distill import UNLABELLED, DataFiles, DistillError
from distill.plugins.tasks import ExtractiveQA, MultiLabelClassification, Regression, TokenClassification
from distill.teacher import Teacher
from distill.training.corpus import Corpus
from distill.training.data import TaskDataModule
from tests.conftest import CONLL, RTE, SHARED, SST2, base_config, run_cli, small_data, write_config


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Teacher:
    return Teacher(str(tiny_teacher))


def sst2_sentences(first: int, count: int) -> list[str]:
    """Real SST-2 training sentences from far past the rows the tests train on, their labels dropped."""
    with open(SST2 / "train.tsv", encoding="utf-8") as rows:
        table = list(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["sentence"] for row in table[first : first + count]]


@pytest.fixture
def lines(tmp_path) -> Path:
    """A .txt corpus of 40 sentences with blank lines between some of them."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(sst2_sentences(5000, 20)) + "\n" + "\n".join(sst2_sentences(5020, 20)) + "\n")
    return path


def data_module(teacher, tmp_path, corpus: Corpus, task="sst2", folder=SST2) -> TaskDataModule:
    return small_data(teacher, tmp_path / "cache", task, folder, corpus=corpus)


def test_a_text_file_adds_unlabelled_rows_after_the_labelled_ones(teacher, tmp_path, lines):
    data = data_module(teacher, tmp_path, Corpus(str(lines)))
    train = data.splits["train"]
    assert len(train) == 60 + 40 and train["idx"] == list(range(100))
    assert all(label != UNLABELLED for label in train["labels"][:60])
    assert all(label == UNLABELLED for label in train["labels"][60:])
    expected = teacher.tokenizer(sst2_sentences(5000, 1)[0], truncation=True, max_length=128)["input_ids"]
    assert train["input_ids"][60] == expected


def test_only_trains_on_the_corpus_while_the_task_keeps_its_label_space(teacher, tmp_path, lines):
    data = data_module(teacher, tmp_path, Corpus(str(lines), only=True, limit=25))
    train = data.splits["train"]
    assert len(train) == 25 and set(train["labels"]) == {UNLABELLED}
    assert list(data.task.labels) == ["0", "1"]
    assert len(data.splits["validation"]) == 10


def test_the_corpus_keys_the_tokenised_cache(teacher, tmp_path, lines):
    plain = data_module(teacher, tmp_path, Corpus(str(lines), limit=5)).fingerprints["train"]
    more = data_module(teacher, tmp_path, Corpus(str(lines), limit=6)).fingerprints["train"]
    lines.write_text("another sentence entirely\n")
    edited = data_module(teacher, tmp_path, Corpus(str(lines), limit=5)).fingerprints["train"]
    assert len({plain, more, edited}) == 3


def test_a_table_for_a_pair_task_names_its_columns_and_other_columns_are_ignored(teacher, tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"a": f"premise {i}", "b": f"hypothesis {i}", "label": "nonsense"} for i in range(7)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = data_module(teacher, tmp_path, Corpus(str(path), text_columns=["a", "b"]), task="rte", folder=RTE)
    train = data.splits["train"]
    assert len(train) == 67 and set(train["labels"][60:]) == {UNLABELLED}
    assert teacher.tokenizer.decode(train["input_ids"][60]) == "[CLS] premise 0 [SEP] hypothesis 0 [SEP]"


@pytest.mark.parametrize(
    ("corpus", "task", "expected"),
    [
        (lambda d: Corpus(str(d / "nope.txt")), "sst2", "does not exist"),
        (lambda d: Corpus(str(d / "pairs.txt")), "rte", "one text per line, but the task reads pairs"),
        (
            lambda d: Corpus(str(d / "table.csv")),
            "sst2",
            "has no column(s) ['sentence']; its columns are ['text', 'x']",
        ),
        (lambda d: Corpus(str(d / "table.csv"), text_columns=["text", "x"]), "sst2", "names 2 column(s)"),
        (
            lambda d: Corpus(str(d / "gaps.jsonl"), text_columns=["text"]),
            "sst2",
            "gaps.jsonl), line 2: no text in column 'text'",
        ),
    ],
)
def test_bad_corpora_get_one_clear_error(teacher, tmp_path, corpus, task, expected):
    (tmp_path / "pairs.txt").write_text("a premise\n")
    (tmp_path / "table.csv").write_text("text,x\nfine,1\n")
    (tmp_path / "gaps.jsonl").write_text('{"text": "fine"}\n{"text": null}\n')
    folder = RTE if task == "rte" else SST2
    with pytest.raises(DistillError) as error:
        data_module(teacher, tmp_path, corpus(tmp_path), task=task, folder=folder)
    assert expected in str(error.value)


def test_a_task_whose_examples_need_labels_refuses_a_corpus(teacher, tmp_path, lines):
    squad = str(SHARED / "data" / "squad-v2-sample" / "dev-v2.0-sample.json")
    with pytest.raises(DistillError, match="task extractive_qa cannot train on unlabelled text"):
        TaskDataModule(task=ExtractiveQA(), files=DataFiles(train=squad, validation=squad), train_limit=20,
                       corpus=Corpus(str(lines)))  # fmt: skip


def test_a_token_task_reads_a_corpus_of_raw_sentences_as_untagged_words(tmp_path, lines):
    files = DataFiles(train=str(CONLL / "train.txt"), validation=str(CONLL / "dev.txt"), format="conll")
    data = TaskDataModule(task=TokenClassification(), files=files, train_limit=20, corpus=Corpus(str(lines)))
    train = data.read("train")
    assert len(train) == 20 + 40
    corpus_row = train[20]
    assert corpus_row["tokens"] == sst2_sentences(5000, 1)[0].split()
    assert corpus_row["labels"] == [UNLABELLED] * len(corpus_row["tokens"]) and corpus_row["idx"] == 20
    assert train[0]["labels"] != [UNLABELLED] * len(train[0]["tokens"])  # the labelled rows keep their tags


def test_the_multi_label_and_regression_markers_are_the_ones_their_losses_skip(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\ntwo\n")
    multi = MultiLabelClassification(label_columns=["x", "y", "z"])
    source = Corpus(str(path)).source(multi.text_columns)
    assert multi.read_unlabelled(source, "train")["labels"] == [[UNLABELLED] * 3] * 2
    regression = Regression()
    assert regression.read_unlabelled(source, "train")["labels"] == [UNLABELLED] * 2


def test_a_task_agnostic_stage_trains_on_a_corpus_alone(tiny_teacher, tmp_path, lines):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["losses"] = [{"class_path": "HiddenStatesKD"}, {"class_path": "AttentionKD"}]
    config["data"]["corpus"] = {"path": str(lines), "only": True}
    config["data"]["batch_size"] = 8
    run_cli("fit", "--config", str(write_config(tmp_path / "stage.yaml", config)), "--run_name", "stage")
    report = json.loads((tmp_path / "stage" / "report.json").read_text())
    assert report["trains_predictions"] is False
    assert report["training"]["samples"] == 8 * 8  # max_steps 8 of batch 8, from the 40 corpus rows alone
    assert (tmp_path / "stage" / "student" / "model.safetensors").is_file()
