"""Data sources and the data module: GLUE folders, user files in every format, tokenising, caching, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from distill import DataFiles, DistillError, HubDataset
from distill.plugins.losses import HardLabelCE, LogitsKD
from distill.plugins.tasks import TextClassification
from distill.registry import task_from_spec
from distill.students.encoder import BertStudent
from distill.training.data import TaskDataModule
from distill.training.module import DistillationModule
from tests.conftest import REFERENCE_TEACHER, RTE, SST2


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REFERENCE_TEACHER)


def test_reads_real_sst2_rows_with_labels_and_indices():
    rows = task_from_spec("sst2").read(DataFiles(train=str(SST2 / "train.tsv")), "train", limit=300)
    assert len(rows) == 300 and rows["idx"] == list(range(300))
    assert set(rows["labels"]) == {0, 1}
    assert rows["sentence"][0] == "hide new secretions from the parental units"


def test_quote_characters_stay_literal_in_real_rte_rows():
    rows = task_from_spec("rte").read(DataFiles(validation=str(RTE / "dev.tsv")), "validation")
    assert len(rows) == 277  # a CSV parser with quoting on would merge rows here
    assert rows["sentence1"][3].startswith('"The Amish community')
    assert set(rows["labels"]) == {0, 1}


def test_malformed_rows_report_their_line_number(tmp_path: Path):
    lines = (SST2 / "train.tsv").read_text().splitlines()[:6]
    lines[4] = lines[4] + "\textra field"
    (tmp_path / "long.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DistillError, match=r"long.tsv' could not be read as tsv: .*line 5, saw 3"):
        task_from_spec("sst2").read(DataFiles(train=str(tmp_path / "long.tsv")), "train")
    lines[4] = "no label here"
    (tmp_path / "short.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DistillError, match=r"short.tsv\), line 5: the row has fewer fields than the header"):
        task_from_spec("sst2").read(DataFiles(train=str(tmp_path / "short.tsv")), "train")


def test_unknown_label_missing_file_and_wrong_folder_are_named(tmp_path: Path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nfine film\t7\n")
    with pytest.raises(DistillError, match=r"line 2: label '7' is not among the labels given.*\['0', '1'\]"):
        task_from_spec("sst2").read(DataFiles(train=str(tmp_path / "train.tsv")), "train")
    with pytest.raises(DistillError, match="dev.tsv' does not exist"):
        task_from_spec("sst2").read(DataFiles(validation=str(tmp_path / "dev.tsv")), "validation")
    with pytest.raises(DistillError, match=r"has no column\(s\) \['sentence1', 'sentence2'\]; its columns are"):
        task_from_spec("rte").read(DataFiles(validation=str(SST2 / "dev.tsv")), "validation")
    with pytest.raises(DistillError, match="is not a folder"):
        TaskDataModule(task="sst2", data_dir=str(tmp_path / "nowhere"))


# --- every format reads the same examples -------------------------------------------------------------------------


def _convert(rows: datasets.Dataset, folder: Path, stem: str) -> dict[str, Path]:
    """The same rows as CSV (standard quoting), JSONL, JSON and Parquet, written by the standard libraries."""
    folder.mkdir(parents=True, exist_ok=True)
    records = rows.to_list()
    paths = {kind: folder / f"{stem}.{kind}" for kind in ("csv", "jsonl", "json", "parquet")}
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows.column_names)
        writer.writeheader()
        writer.writerows(records)
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in records))
    paths["json"].write_text(json.dumps(records))
    rows.to_parquet(str(paths["parquet"]))
    return paths


def _first_step_loss(module: DistillationModule, data: TaskDataModule) -> tuple[torch.Tensor, dict]:
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(0)  # the same dropout draws for every format
    student, teacher = module.features(batch)
    total, _ = module.objective(student, teacher, batch)
    return total, batch


@pytest.mark.parametrize(
    ("preset", "folder", "columns"), [("sst2", SST2, ["sentence"]), ("rte", RTE, ["sentence1", "sentence2"])]
)
def test_tsv_csv_jsonl_json_and_parquet_give_identical_data_and_first_step_losses(
    preset, folder, columns, tiny_teacher, tokenizer, tmp_path
):
    # Real GLUE rows, converted by their raw text (labels stay label names, as a user's files would hold them).
    files = {"train": "train.tsv", "validation": "dev.tsv"}
    raw = {split: DataFiles(train=str(folder / name)).load("train").select(range(96)) for split, name in files.items()}
    converted = {split: _convert(rows, tmp_path / "files", split) for split, rows in raw.items()}
    sizes = {"train_limit": 96, "eval_limit": 96, "batch_size": 16}
    glue = TaskDataModule(task=preset, data_dir=str(folder), tokenizer=tokenizer, cache_dir=str(tmp_path), **sizes)
    label_column = glue.task.label_column
    module = DistillationModule(
        student=BertStudent(num_layers=1, init_from_teacher=[0]),
        losses=[HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=2.0)],
        teacher=str(tiny_teacher),
        task=glue.task.spec(),
    )
    glue.setup("fit")
    reference_loss, reference_batch = _first_step_loss(module, glue)
    for kind in ("csv", "jsonl", "json", "parquet"):
        task = TextClassification(text_columns=columns, label_column=label_column, name=preset)
        files = DataFiles(train=str(converted["train"][kind]), validation=str(converted["validation"][kind]))
        data = TaskDataModule(
            task=task, files=files, batch_size=16, tokenizer=tokenizer, cache_dir=str(tmp_path / kind)
        )
        data.setup("fit")
        assert data.task.labels == glue.task.labels  # discovered from the file: the preset's labels, same order
        for split in ("train", "validation"):
            assert data.splits[split].to_dict() == glue.splits[split].to_dict(), (kind, split)
        loss, batch = _first_step_loss(module, data)
        assert all(torch.equal(batch[k], reference_batch[k]) for k in reference_batch), kind
        assert torch.equal(loss, reference_loss), kind


# --- tokenising and caching ---------------------------------------------------------------------------------------


def test_pairs_are_tokenised_together_and_padded_per_batch(tokenizer, tmp_path: Path):
    data = TaskDataModule(
        task="rte",
        data_dir=str(RTE),
        tokenizer=tokenizer,
        train_limit=64,
        eval_limit=32,
        batch_size=8,
        max_length=128,
        cache_dir=str(tmp_path),
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "idx"}
    assert batch["token_type_ids"].max() == 1  # the second sentence is segment 1
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())  # padded to the longest row
    assert len(data.splits["validation"]) == 32


def test_tokenised_splits_are_cached_by_fingerprint(tokenizer, tmp_path: Path):
    def build(max_length: int) -> TaskDataModule:
        data = TaskDataModule(
            task="sst2",
            data_dir=str(SST2),
            tokenizer=tokenizer,
            train_limit=200,
            eval_limit=50,
            max_length=max_length,
            cache_dir=str(tmp_path),
        )
        data.setup("fit")
        return data

    build(64)
    cached = sorted((tmp_path / "distill").glob("*.arrow"))
    mtimes = [f.stat().st_mtime_ns for f in cached]
    build(64)
    assert [f.stat().st_mtime_ns for f in cached] == mtimes  # reused, not rewritten
    build(32)
    assert len(list((tmp_path / "distill").glob("*.arrow"))) == len(cached) + 2  # a new max_length is a new key


# --- bad input: each names the file, row or key, and the fix --------------------------------------------------------


def _files(tmp_path: Path, train: str, validation: str, suffix: str = ".csv") -> DataFiles:
    (tmp_path / f"train{suffix}").write_text(train)
    (tmp_path / f"validation{suffix}").write_text(validation)
    return DataFiles(train=str(tmp_path / f"train{suffix}"), validation=str(tmp_path / f"validation{suffix}"))


BAD_INPUT = {
    "a missing column": (
        dict(train="text,label\ngood,pos\nbad,neg\n", validation="text,label\nok,pos\n"),
        dict(text_columns=["review"]),
        r"data.files.train \(.*train.csv\) has no column\(s\) \['review'\]; its columns are \['text', 'label'\]",
    ),
    "a validation label never seen in training": (
        dict(train="text,label\ngood,pos\nbad,neg\n", validation="text,label\nok,pos\nmeh,neutral\n"),
        {},
        r"validation.csv\), line 3: label 'neutral' is not among the labels seen in the training split",
    ),
    "an empty file": (
        dict(train="", validation="text,label\nok,pos\n"),
        {},
        r"data.files.train '.*train.csv' is empty",
    ),
    "a float label for classification": (
        dict(train="text,label\ngood,1\nbad,0.5\n", validation="text,label\nok,1\n"),
        {},
        r"train.csv\), line 3: label '0.5' is a number with a fraction, not a class: for scores use "
        r"class_path: Regression",
    ),
    "an unknown file type": (
        dict(train="text,label\n", validation="text,label\n", suffix=".xlsx"),
        {},
        r"data.files.train '.*train.xlsx': unknown file type '.xlsx'; use one of .csv, .tsv, .json, .jsonl, .parquet",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_classification_input_is_named(case, tmp_path):
    files, task_args, message = BAD_INPUT[case]
    with pytest.raises(DistillError, match=message):  # the training split is read when the data module is made
        TaskDataModule(task=TextClassification(**task_args), files=_files(tmp_path, **files)).read("validation")


def test_text_for_regression_is_refused(tmp_path):
    from distill.plugins.tasks import Regression

    files = _files(tmp_path, "text,label\ngood,4.5\nbad,low\n", "text,label\nok,3\n")
    with pytest.raises(DistillError, match=r"train.csv\), line 3: label 'low' is not a number"):
        TaskDataModule(task=Regression(), files=files)


def test_a_missing_split_and_an_unreachable_hub_say_what_to_do(tmp_path):
    files = DataFiles(train=str(_files(tmp_path, "text,label\na,x\nb,y\n", "").train))
    data = TaskDataModule(task=TextClassification(), files=files)
    with pytest.raises(DistillError, match="no validation split: data.files.validation is not set"):
        data.read("validation")
    with pytest.raises(
        DistillError, match="hub dataset imdb.*Offline.*point data.files.train and data.files.validation"
    ):
        TaskDataModule(task=TextClassification(), hub=HubDataset(path="imdb"))
    with pytest.raises(DistillError, match="task textclassification has no data: give data.files"):
        TaskDataModule(task=TextClassification())


def test_hub_class_labels_become_names_in_single_and_list_columns():
    """What HubDataset does to a loaded hub split (the hub itself is unreachable here): GLUE-style class ids and
    conll2003-style tag lists read as the names a file would hold."""
    from distill.sources import _class_ids_to_names

    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    rows = {"tokens": [["Peter", "Blackburn"], ["ok"]], "ner_tags": [[1, 2], [0]], "label": [1, -1]}
    named = _class_ids_to_names(datasets.Dataset.from_dict(rows, features=features)).to_dict()
    assert named["ner_tags"] == [["B-PER", "I-PER"], ["O"]] and named["label"] == ["positive", None]
