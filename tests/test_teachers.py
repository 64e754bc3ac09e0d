"""Teachers beyond a local encoder: a file of soft labels, several teachers at once (an ensemble)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from distill import DataFiles, DistillError, Teacher
from distill.plugins.tasks import TextClassification
from distill.plugins.teachers import SoftLabels
from distill.registry import task_from_spec
from tests.conftest import SST2, base_config, cli_error, run_cli, small_data, write_config

ROWS = 128  # base_config's train_limit


def sst2_rows(count: int) -> list[dict[str, str]]:
    with open(SST2 / "train.tsv", encoding="utf-8") as rows:
        return list(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))[:count]


def soft_file(path: Path, rows: list[dict], **columns) -> Path:
    """A JSONL soft-label file: each row's values by column name."""
    path.write_text("".join(json.dumps({k: v[i] for k, v in columns.items()}) + "\n" for i in range(len(rows))))
    return path


def sst2() -> TextClassification:
    return task_from_spec("sst2")


@pytest.fixture(scope="module")
def logits_file(tiny_teacher, tmp_path_factory) -> Path:
    """`distill predict --logits` on the first ROWS SST-2 training rows, by the tiny teacher: its own logits."""
    folder = tmp_path_factory.mktemp("soft")
    rows = folder / "train.jsonl"
    rows.write_text("".join(json.dumps({"sentence": r["sentence"]}) + "\n" for r in sst2_rows(ROWS)))
    run_cli("predict", "--model", str(tiny_teacher), "--task", "sst2", "--input", str(rows), "--output",
            str(folder / "soft.jsonl"), "--logits", "true")  # fmt: skip
    return folder / "soft.jsonl"


def losses_by_step(run: Path) -> list[float]:
    lines = (run / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    index = lines[0].split(",").index("train/loss")
    return [float(line.split(",")[index]) for line in lines[1:] if line.split(",")[index]]


def test_a_file_of_the_teachers_own_logits_trains_exactly_as_the_live_teacher(tiny_teacher, logits_file, tmp_path):
    live = base_config(tiny_teacher, tmp_path)
    live["trainer"]["log_every_n_steps"] = 1
    run_cli("fit", "--config", str(write_config(tmp_path / "live.yaml", live)), "--run_name", "live")
    from_file = yaml.safe_load(yaml.safe_dump(live))
    from_file["model"]["teacher"] = {"class_path": "SoftLabels", "init_args": {
        "path": str(logits_file), "prefix": "logit_", "values": "logits", "tokenizer": str(tiny_teacher)}}  # fmt: skip
    run_cli("fit", "--config", str(write_config(tmp_path / "file.yaml", from_file)), "--run_name", "file")
    expected, got = losses_by_step(tmp_path / "live"), losses_by_step(tmp_path / "file")
    assert len(got) == len(expected) == 8
    assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) < 1e-5
    cards = [json.loads((tmp_path / run / "student" / "card.json").read_text()) for run in ("live", "file")]
    assert cards[0]["dev_metrics"]["accuracy"] == cards[1]["dev_metrics"]["accuracy"]
    assert not (tmp_path / "file" / "report.json").exists()  # a file teacher cannot be measured on dev


def test_probabilities_are_inferred_and_said_in_the_notes(tiny_teacher, tmp_path):
    rows = sst2_rows(60)
    path = soft_file(tmp_path / "p.jsonl", rows, **{"0": [0.25] * 60, "1": [0.75] * 60})
    teacher = SoftLabels(str(path), task=sst2())
    data = small_data(Teacher(str(tiny_teacher)), tmp_path / "cache")
    teacher.prepare(data)
    assert teacher.values == "probabilities"
    assert any("read as probabilities" in note for note in data.notes["train"])
    batch = {"idx": torch.tensor([0, 59]), "attention_mask": torch.ones(2, 3)}
    logits = teacher(batch, frozenset({"logits"})).logits
    torch.testing.assert_close(logits.softmax(-1), torch.tensor([[0.25, 0.75]] * 2))


@pytest.mark.parametrize(
    ("columns", "options", "expected"),
    [
        ({"0": [0.5] * 59 + [0.7], "1": [0.5] * 60}, {"values": "probabilities"},
         "line 60: probabilities [0.7, 0.5] sum to 1.2000, not 1"),
        ({"0": [0.1] * 59 + [math.nan], "1": [0.9] * 60}, {}, "line 60: [nan, 0.9] holds NaN or Inf"),
        ({"neg": [0.1] * 60, "1": [0.9] * 60}, {}, "has no column(s) ['0'] for the task's labels"),
        ({"0": [0.1] * 59, "1": [0.9] * 59}, {}, "has 59 rows, but the training data has 60 examples"),
        ({"id": [str(i) for i in range(59)], "0": [0.1] * 59, "1": [0.9] * 59}, {"id_column": "id"},
         "has no id column 'id' to match"),
    ],
)  # fmt: skip
def test_a_soft_label_file_that_does_not_fit_is_refused_naming_file_and_row(
    columns, options, expected, tiny_teacher, tmp_path
):
    path = soft_file(tmp_path / "bad.jsonl", list(range(len(next(iter(columns.values()))))), **columns)
    with pytest.raises(DistillError) as error:
        teacher = SoftLabels(str(path), task=sst2(), **options)
        teacher.prepare(small_data(Teacher(str(tiny_teacher)), tmp_path / "cache"))
    assert expected in str(error.value) and str(path) in str(error.value)


def test_rows_keyed_by_id_must_cover_every_training_example(tiny_teacher, tmp_path):
    train = tmp_path / "train.jsonl"
    rows = sst2_rows(60)
    train.write_text("".join(json.dumps({"uid": f"r{i}", "sentence": r["sentence"], "label": r["label"]}) + "\n"
                             for i, r in enumerate(rows)))  # fmt: skip
    files = DataFiles(train=str(train), validation=str(train))
    labels = {"uid": [f"r{i}" for i in reversed(range(60))], "0": [i / 100 for i in reversed(range(60))]}
    labels["1"] = [1 - v for v in labels["0"]]
    path = soft_file(tmp_path / "keyed.jsonl", rows, **labels)  # in reverse order: matched by id, not by row
    from distill.training.data import TaskDataModule

    task = {"class_path": "TextClassification", "init_args": {"text_columns": ["sentence"], "labels": ["0", "1"]}}
    data = TaskDataModule(task=task_from_spec(task), files=files, tokenizer=Teacher(str(tiny_teacher)).tokenizer)
    teacher = SoftLabels(str(path), id_column="uid", task=data.task)
    teacher.prepare(data)
    batch = {"idx": torch.tensor([0, 10]), "attention_mask": torch.ones(2, 3)}
    probabilities = teacher(batch, frozenset({"logits"})).logits.softmax(-1)[:, 0]
    torch.testing.assert_close(probabilities, torch.tensor([0.0, 0.10]), atol=1e-6, rtol=0)
    short = soft_file(tmp_path / "short.jsonl", rows[:59], **{k: v[:59] for k, v in labels.items()})
    with pytest.raises(DistillError, match=r"has no row for 1 training example\(s\), id\(s\) \['r0'\]"):
        SoftLabels(str(short), id_column="uid", task=data.task).prepare(data)


def test_a_loss_that_reads_hidden_states_is_refused_with_a_file_teacher(logits_file, tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["teacher"] = str(logits_file)
    config["model"]["losses"].append({"class_path": "HiddenStatesKD"})
    message = cli_error("fit", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert "reads the teacher's ['hidden_states'], but the teacher (soft_labels" in message
    assert "gives only ['logits']" in message


def test_a_student_that_copies_the_teachers_layers_needs_a_model_beside_the_file(logits_file, tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["teacher"] = {"class_path": "SoftLabels", "init_args": {"path": str(logits_file),
                                                                            "prefix": "logit_"}}  # fmt: skip
    message = cli_error("fit", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert "BertStudent takes its sizes and vocabulary from the teacher's model" in message
    assert "names one with `tokenizer:`" in message
