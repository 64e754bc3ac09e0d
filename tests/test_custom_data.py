"""A user's own task and files, end to end through the CLI: classification on a CSV (the configs/custom recipe),
multi-label and regression on JSONL, teacher fine-tuning on the CSV, the teacher check by label names, and
bad input refused in one line with no run folder left behind.

Multi-label and regression rows are real SST-2 sentences in those shapes (no multi-label set is reachable
offline): the gold label as a score, and the gold label plus an independent second label (more than ten words).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoConfig

from distill import Teacher
from distill.registry import task_from_spec
from tests.conftest import ROOT, SST2, base_config, cli_error, run_cli, save_tiny_teacher, tree, write_config

CUSTOM = ROOT / "configs" / "custom"


def custom_config(teacher: Path, root: Path) -> dict:
    """The fast test config on the custom recipe's data block (configs/custom/data.yaml)."""
    config = base_config(teacher, root)
    data = {k: v for k, v in config["data"].items() if k not in ("task", "data_dir")}
    recipe = yaml.safe_load((CUSTOM / "data.yaml").read_text())
    recipe["files"] = {split: str(ROOT / path) for split, path in recipe["files"].items()}
    config["data"] = {**recipe, **data}
    return config


def sst2_jsonl(path: Path, count: int, start: int = 0) -> Path:
    rows = []
    for line in (SST2 / "train.tsv").read_text().splitlines()[1 + start : 1 + start + count]:
        text, label = line.split("\t")
        rows.append({"text": text, "score": float(label), "positive": int(label), "long": int(len(text.split()) > 10)})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_distill_plugins_lists_the_tasks_and_their_presets(capsys):
    run_cli("plugins")
    printed = capsys.readouterr().out
    assert "tasks: TextClassification (presets: cola, mnli, mrpc, qnli, qqp, rte, sst2)" in printed
    assert "tasks: Regression (presets: stsb)" in printed and "tasks: MultiLabelClassification" in printed


@pytest.fixture(scope="module")
def custom_run(tiny_teacher, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("custom")
    run_cli("fit", "--config", str(write_config(root / "c.yaml", custom_config(tiny_teacher, root))), "--run_name", "c")
    return root / "c"


def test_a_user_csv_trains_and_its_label_names_reach_the_export_and_predict(custom_run, tmp_path):
    card = json.loads((custom_run / "student" / "card.json").read_text())
    assert card["task"] == "reviews" and card["labels"] == ["negative", "positive"]
    assert AutoConfig.from_pretrained(custom_run / "student").id2label == {0: "negative", 1: "positive"}
    assert "# Report card: reviews" in (custom_run / "report.md").read_text()
    reviews = tmp_path / "new.csv"
    with reviews.open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "review"], ["1", 'a "great", moving film'], ["2", "dull"]])
    run_cli("predict", "--model", str(custom_run / "student"), "--input", str(reviews))
    with (tmp_path / "new.predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["review"] for r in rows] == ['a "great", moving film', "dull"]  # quoting survives the round trip
    assert {r["prediction"] for r in rows} <= {"negative", "positive"}
    assert float(rows[0]["probability_negative"]) + float(rows[0]["probability_positive"]) == pytest.approx(1, abs=1e-5)


def test_bench_takes_the_user_files_from_the_card(custom_run, tiny_teacher, tmp_path):
    run_cli(
        "bench",
        "--teacher",
        str(tiny_teacher),
        str(custom_run / "student"),
        "--out",
        str(tmp_path),
        "--latency_rows",
        "8",
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["task"] == "reviews" and result["rows"][0]["metric"] == "accuracy"


def test_a_teacher_is_made_from_a_pretrained_encoder_and_the_csv_then_teaches(tiny_teacher, tmp_path):
    config = custom_config(tiny_teacher, tmp_path)
    config["model"] = {
        "student": {"class_path": "PretrainedStudent", "init_args": {"model": str(tiny_teacher)}},
        "losses": [{"class_path": "HardLabelCE"}],
        "learning_rate": 1e-3,
    }
    run_cli("fit", "--config", str(write_config(tmp_path / "t.yaml", config)), "--run_name", "teacher")
    made = tmp_path / "teacher" / "student"
    assert AutoConfig.from_pretrained(made).id2label == {0: "negative", 1: "positive"}
    student = write_config(tmp_path / "s.yaml", custom_config(made, tmp_path))
    run_cli("fit", "--config", str(student), "--run_name", "student", "--trainer.max_steps", "2")
    assert json.loads((tmp_path / "student" / "student" / "card.json").read_text())["teacher"] == str(made)


def _named_teacher(folder: Path, names: list[str]) -> Path:
    save_tiny_teacher(folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = dict(enumerate(names))
    config["label2id"] = {name: i for i, name in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_teacher_with_the_labels_in_another_order_is_put_in_the_tasks_order(tmp_path):
    teacher_dir = _named_teacher(tmp_path / "swapped", ["positive", "negative"])
    task = task_from_spec({"class_path": "TextClassification", "init_args": {"labels": ["negative", "positive"]}})
    plain, ordered = Teacher(str(teacher_dir)), Teacher(str(teacher_dir), task)
    batch = dict(plain.tokenizer(["a fine film", "dull"], return_tensors="pt", padding=True))
    with torch.no_grad():
        torch.testing.assert_close(ordered(batch, frozenset({"logits"})).logits, plain.model(**batch).logits[:, [1, 0]])
    assert ordered.model.config.id2label == {0: "negative", 1: "positive"}


def test_a_teacher_with_other_label_names_is_refused_listing_both(tmp_path):
    teacher_dir = _named_teacher(tmp_path / "other", ["spam", "ham"])
    before = tree(tmp_path)
    message = cli_error("fit", "--config", str(write_config(tmp_path / "x.yaml", custom_config(teacher_dir, tmp_path))))
    assert "predicts 2 label(s) ['spam', 'ham'], but task reviews has 2: ['negative', 'positive']" in message
    assert "\n" not in message and tree(tmp_path) == before | {tmp_path / "x.yaml"}


def test_multi_label_on_jsonl_end_to_end(tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["data"].pop("data_dir")
    config["data"]["task"] = {
        "class_path": "MultiLabelClassification",
        "init_args": {"text_columns": ["text"], "label_columns": ["positive", "long"], "name": "tags"},
    }
    files = {
        "train": sst2_jsonl(tmp_path / "train.jsonl", 128),
        "validation": sst2_jsonl(tmp_path / "dev.jsonl", 64, 500),
    }
    config["data"]["files"] = {k: str(v) for k, v in files.items()}
    run_cli("fit", "--config", str(write_config(tmp_path / "m.yaml", config)), "--run_name", "m")
    card = json.loads((tmp_path / "m" / "student" / "card.json").read_text())
    assert card["labels"] == ["positive", "long"] and 0 <= card["dev_metrics"]["micro_f1"] <= 1
    assert "macro_f1" in card["dev_metrics"]
    metrics = (tmp_path / "m" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "train/logits" in metrics  # LogitsKD ran, as a sigmoid/BCE term (kind auto)
    run_cli("predict", "--model", str(tmp_path / "m" / "student"), "--input", str(files["validation"]))
    rows = [json.loads(line) for line in (tmp_path / "dev.predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 64 and {"prediction", "probability_positive", "probability_long"} <= set(rows[0])
    assert all(set(filter(None, r["prediction"].split(","))) <= {"positive", "long"} for r in rows)


def test_regression_on_jsonl_end_to_end(tmp_path):
    teacher = save_tiny_teacher(tmp_path / "teacher", num_labels=1)
    config = base_config(teacher, tmp_path)
    config["data"].pop("data_dir")
    config["data"]["task"] = {"class_path": "Regression", "init_args": {"label_column": "score", "name": "rating"}}
    config["data"]["files"] = {
        "train": str(sst2_jsonl(tmp_path / "t.jsonl", 128)),
        "validation": str(sst2_jsonl(tmp_path / "v.jsonl", 64, 500)),
    }
    config["model"]["losses"][1]["init_args"] = {"weight": 0.5}  # LogitsKD kind auto: mse for a score
    run_cli("fit", "--config", str(write_config(tmp_path / "r.yaml", config)), "--run_name", "r")
    card = json.loads((tmp_path / "r" / "student" / "card.json").read_text())
    assert card["labels"] is None and -1 <= card["dev_metrics"]["pearson"] <= 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["task"]["init_args"].update(text_columns=["text"]),
            "has no column(s) ['text']; its columns are ['review', 'sentiment']",
        ),
        (
            lambda d: d.update(files={"train": "nowhere/train.csv", "validation": "nowhere/dev.csv"}),
            "data.files.train 'nowhere/train.csv' does not exist",
        ),
        (
            lambda d: d.pop("files") and d.update(hub={"path": "imdb"}),
            "could not load split 'train' of hub dataset imdb",
        ),
        (lambda d: d["files"].update(train=str(SST2 / "train.tsv")), "has no column(s) ['review', 'sentiment']"),
        (
            lambda d: d["task"]["init_args"].update(label_colum="sentiment"),
            "data.task: TextClassification has no option 'label_colum': it takes text_columns, name, label_column",
        ),
        (
            lambda d: d["task"].update(class_path="TextClasification"),
            "unknown task 'TextClasification' in data.task: known tasks are ExtractiveQA, MultiLabelClassification",
        ),
        (lambda d: d.update(data_dir=str(SST2)), "data.files and data.data_dir are both set: give the data one way"),
    ],
    ids=["missing column", "missing file", "hub offline", "wrong file", "misspelt option", "unknown task", "two ways"],
)
def test_bad_custom_data_is_one_line_and_leaves_no_run_folder(edit, expected, tiny_teacher, tmp_path):
    config = custom_config(tiny_teacher, tmp_path)
    edit(config["data"])
    path = write_config(tmp_path / "bad.yaml", config)
    before = tree(tmp_path)
    message = cli_error("fit", "--config", str(path), "--run_name", "bad")
    assert expected in message and "\n" not in message and "Traceback" not in message
    assert tree(tmp_path) == before


def test_distill_test_scores_the_test_file_when_there_is_one(custom_run, capsys):
    config = custom_run.parent / "c.yaml"
    checkpoint = str(custom_run / "checkpoints" / "last.ckpt")
    test_file = custom_run.parent / "test.csv"
    test_file.write_text("review,sentiment\n" + "a moving film,positive\n" * 3 + "dull and long,negative\n")
    run_cli("test", "--config", str(config), "--ckpt_path", checkpoint, "--data.files.test", str(test_file))
    printed = capsys.readouterr().out
    assert "test/accuracy" in printed
    accuracy = float(next(line for line in printed.splitlines() if "test/accuracy" in line).split("│")[2])
    assert accuracy in (0.0, 0.25, 0.5, 0.75, 1.0)  # four rows: scored on the test file, not the validation split
