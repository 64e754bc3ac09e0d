"""The built-in tasks: GLUE presets, label discovery and parsing, the teacher check by name, and multi-label maths.

The multi-label rows are real SST-2 sentences with two label columns derived from them, because no public
multi-label set is reachable offline: `negative`/`positive` from the gold label, and `long` for sentences of
more than ten words. The second label is independent of the first, so the task really has two sigmoids to learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill import DataFiles, DistillError
from distill.plugins.tasks import MultiLabelClassification, Regression, TextClassification
from distill.registry import task_from_spec, task_presets
from tests.conftest import SST2


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sst2_rows(count: int, start: int = 0) -> list[dict]:
    lines = (SST2 / "train.tsv").read_text().splitlines()[1 + start : 1 + start + count]
    return [dict(zip(("sentence", "label"), line.split("\t"), strict=True)) for line in lines]


def multi_label_rows(count: int, start: int = 0) -> list[dict]:
    return [
        {"sentence": r["sentence"], "positive": int(r["label"]), "long": int(len(r["sentence"].split()) > 10)}
        for r in sst2_rows(count, start)
    ]


def test_every_glue_task_is_a_preset_known_by_its_usual_spellings():
    assert {"sst2", "cola", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"} <= set(task_presets())
    assert task_from_spec("SST-2").spec() == task_from_spec("sst2").spec() == task_from_spec("sst-2").spec()


def test_presets_describe_pairs_regression_and_metrics():
    assert task_from_spec("rte").is_pair and not task_from_spec("sst2").is_pair
    assert task_from_spec("stsb").num_labels == 1 and task_from_spec("mnli").num_labels == 3
    assert task_from_spec("cola").main_metric == "mcc" and task_from_spec("mrpc").main_metric == "f1"
    assert isinstance(task_from_spec("stsb"), Regression)


def test_unknown_task_names_the_presets_and_the_classes():
    with pytest.raises(DistillError, match="unknown task 'sst3'.*sst2.*TextClassification"):
        task_from_spec("sst3")


def test_a_spec_rebuilds_the_same_task_with_its_labels_fixed(tmp_path):
    task = TextClassification(text_columns=["sentence"])
    task.read(DataFiles(train=str(write_jsonl(tmp_path / "t.jsonl", sst2_rows(50)))), "train")
    again = task_from_spec(json.loads(json.dumps(task.spec())))
    assert again.labels == task.labels == ["0", "1"] and type(again) is TextClassification


def test_labels_are_discovered_in_a_stable_order(tmp_path):
    rows = [{"text": f"row {i}", "label": label} for i, label in enumerate(["10", "2", "b", "a", "2"])]
    task = TextClassification()
    task.read(DataFiles(train=str(write_jsonl(tmp_path / "t.jsonl", rows))), "train")
    assert task.labels == ["2", "10", "a", "b"]  # numbers numerically, then names


def test_integer_labels_index_given_names_and_name_themselves_otherwise(tmp_path):
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    source = DataFiles(train=str(write_jsonl(tmp_path / "t.jsonl", rows)))
    named = TextClassification(labels=["negative", "positive"])
    assert named.read(source, "train")["labels"] == [1, 0]
    assert TextClassification().read(source, "train")["labels"] == [1, 0]


def test_teacher_labels_are_checked_by_name():
    task = TextClassification(labels=["negative", "positive"])
    assert task.teacher_order({0: "LABEL_0", 1: "LABEL_1"}, "t") is None  # never named: checked by count
    assert task.teacher_order({0: "negative", 1: "positive"}, "t") is None
    assert task.teacher_order({0: "positive", 1: "negative"}, "t") == [1, 0]
    with pytest.raises(DistillError, match=r"\['good', 'bad'\].*\['negative', 'positive'\]"):
        task.teacher_order({0: "good", 1: "bad"}, "t")
    with pytest.raises(DistillError, match="predicts 3 label"):
        task.teacher_order({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, "t")


def test_labels_that_do_not_fit_the_task_are_refused_with_their_row(tmp_path):
    source = DataFiles(train=str(write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": 0.5}])))
    with pytest.raises(DistillError, match=r"line 1: label 0.5 is a number with a fraction.*Regression"):
        TextClassification().read(source, "train")
    scores = [{"text": "a", "label": 1}, {"text": "b", "label": "high"}]
    text = DataFiles(train=str(write_jsonl(tmp_path / "r.jsonl", scores)))
    with pytest.raises(DistillError, match=r"line 2: label 'high' is not a number"):
        Regression().read(text, "train")
    flags = DataFiles(train=str(write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "x": 1, "y": 2}])))
    with pytest.raises(DistillError, match=r"line 1: label column 'y' holds 2"):
        MultiLabelClassification(label_columns=["x", "y"]).read(flags, "train")


def test_multi_label_reading_loss_metrics_and_predictions(tmp_path):
    task = MultiLabelClassification(text_columns=["sentence"], label_columns=["positive", "long"])
    source = DataFiles(train=str(write_jsonl(tmp_path / "m.jsonl", multi_label_rows(200))))
    read = task.read(source, "train")
    labels = torch.tensor(read["labels"])
    assert labels.shape == (200, 2) and 0 < labels[:, 1].sum() < 200  # both labels occur, independently
    assert task.head_config()["problem_type"] == "multi_label_classification"
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]])
    gold = torch.tensor([[1, 0], [1, 1], [1, 1]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, gold.float())
    assert torch.isclose(task.label_loss(logits, gold), expected)
    metrics = task.build_metrics("", sync=False)
    task.update_metrics(metrics, logits, {"labels": gold})
    scores = {k: float(v) for k, v in metrics.compute().items()}
    # "positive": 2 predicted, 3 true, 2 hit (F1 0.8); "long": 2 predicted, 2 true, 2 hit (F1 1.0); micro: 4 of 4 / 5.
    assert scores["micro_f1"] == pytest.approx(2 * 4 / (4 + 5)) and scores["macro_f1"] == pytest.approx(0.9)
    columns = task.prediction_columns(logits, {}, {})
    assert columns["prediction"] == ["positive", "long", "positive,long"]
    assert columns["probability_long"][0] == pytest.approx(torch.sigmoid(torch.tensor(-4.0)).item(), abs=1e-6)
