"""Teachers beyond a local encoder: a file of soft labels, several teachers at once (an ensemble)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill import DataFiles, DistillError, Ensemble, Teacher
from distill.plugins.tasks import TextClassification
from distill.plugins.teachers import SoftLabels
from distill.registry import task_from_spec
from tests.conftest import (
    REFERENCE_TEACHER,
    SST2,
    base_config,
    cli_error,
    run_cli,
    save_tiny_teacher,
    small_data,
    write_config,
)

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


# --- several teachers at once ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reversed_teacher(tmp_path_factory) -> Path:
    """A second tiny teacher whose head lists SST-2's labels the other way round (by name)."""
    return save_tiny_teacher(tmp_path_factory.mktemp("reversed"), seed=1, id2label={0: "1", 1: "0"},
                             label2id={"1": 0, "0": 1})  # fmt: skip


def encoded(teacher: Teacher, texts: list[str]) -> dict[str, torch.Tensor]:
    return dict(teacher.tokenizer(texts, padding=True, return_tensors="pt"))


def test_an_ensemble_puts_each_teacher_in_the_tasks_label_order_and_combines_them(tiny_teacher, reversed_teacher):
    task = sst2()
    batch = encoded(Teacher(str(tiny_teacher), task), ["a moving film .", "dull , flat and long"])
    with torch.no_grad():
        first = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()(**batch).logits
        second = AutoModelForSequenceClassification.from_pretrained(reversed_teacher).eval()(**batch).logits
    second = second[:, [1, 0]]  # its output 1 is label "0": in the task's order
    mean = Ensemble([str(tiny_teacher), str(reversed_teacher)], task=task)
    expected = torch.log((first.softmax(-1) + second.softmax(-1)) / 2)
    torch.testing.assert_close(mean(batch, frozenset({"logits"})).logits, expected, atol=1e-5, rtol=1e-5)
    weighted = Ensemble([str(tiny_teacher), {"teacher": str(reversed_teacher), "weight": 3}], combine="logits",
                        task=task)  # fmt: skip
    torch.testing.assert_close(weighted.answer(batch), (first + 3 * second) / 4, atol=1e-5, rtol=1e-5)


def test_an_ensemble_trains_a_student_and_the_card_measures_each_teacher(tiny_teacher, reversed_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["teacher"] = [str(tiny_teacher), {"teacher": str(reversed_teacher), "weight": 2}]
    run_cli("fit", "--config", str(write_config(tmp_path / "e.yaml", config)), "--run_name", "ensemble")
    rows = {r["model"]: r for r in json.loads((tmp_path / "ensemble" / "report.json").read_text())["rows"]}
    assert list(rows) == ["teacher", "teacher-1", "teacher-2", "student"]
    assert all(0 <= r["value"] <= 1 for r in rows.values())
    assert rows["teacher"]["size_mb"] == pytest.approx(rows["teacher-1"]["size_mb"] + rows["teacher-2"]["size_mb"])


@pytest.mark.parametrize(
    ("teachers", "options", "expected"),
    [
        (["first"], {}, "an ensemble needs two or more"),
        (["first", "second"], {"weights": [1, 0]}, "must be one positive number per teacher (2)"),
        (["first", "second"], {"combine": "votes"}, "ensemble combine 'votes' is unknown"),
        (["first", "other_vocabulary"], {}, "tokenise text differently"),
    ],
)
def test_an_ensemble_that_cannot_combine_is_refused(teachers, options, expected, tiny_teacher, tmp_path):
    other = tmp_path / "other"
    save_tiny_teacher(other)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    tokenizer.add_tokens(["qwertyuiop"])  # another vocabulary
    tokenizer.save_pretrained(other)
    named = {"first": str(tiny_teacher), "second": str(tiny_teacher), "other_vocabulary": str(other)}
    with pytest.raises(DistillError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        Ensemble([named[t] for t in teachers], task=sst2(), **options)


# --- a causal LM as the teacher --------------------------------------------------------------------------------

PROMPT = "Review: {sentence}\nSentiment:"
VERBALIZERS = {"0": " terrible movie", "1": [" great", " good"]}  # a multi-token verbaliser, and two for one label


def save_tiny_lm(folder: Path, family: str, padding_side: str) -> Path:
    """A random tiny Llama or GPT-2 with the reference tokenizer (no LM tokenizer can be downloaded here)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=30522,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
            )
        )
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=4))  # fmt: skip
    model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(REFERENCE_TEACHER)
    tokenizer.padding_side = padding_side
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("family", "padding_side"), [("llama", "left"), ("gpt2", "right")])
def test_the_lm_teachers_scores_are_its_verbaliser_log_probabilities(family, padding_side, tmp_path):
    from distill.plugins.teachers import CausalLMTeacher

    folder = save_tiny_lm(tmp_path / family, family, padding_side)
    few_shot = [{"sentence": "a gem .", "label": "1"}]
    teacher = CausalLMTeacher(str(folder), PROMPT, VERBALIZERS, few_shot=few_shot, batch_size=3, task=sst2())
    rows = [{"sentence": s["sentence"]} for s in sst2_rows(4)]  # of different lengths: the batch is padded
    lm, tokenizer = teacher.lm, AutoTokenizer.from_pretrained(folder)

    def by_hand(text: str, ending: str) -> float:
        context = tokenizer(text).input_ids
        continuation = tokenizer(ending, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = lm(input_ids=torch.tensor([context + continuation])).logits[0].double()
        log_probs = logits.log_softmax(-1)
        return sum(float(log_probs[len(context) - 1 + i, t]) for i, t in enumerate(continuation))

    prefix = "Review: a gem .\nSentiment: great\n\n"
    expected = torch.tensor(
        [[by_hand(prefix + PROMPT.format(**row), " terrible movie"),
          math.log(sum(math.exp(by_hand(prefix + PROMPT.format(**row), v)) for v in (" great", " good")))]
         for row in rows], dtype=torch.float64,
    )  # fmt: skip
    assert len(tokenizer(" terrible movie", add_special_tokens=False).input_ids) == 2
    torch.testing.assert_close(teacher.score(rows).double(), expected, atol=1e-4, rtol=1e-4)


def test_an_lm_teacher_trains_a_student_through_the_teacher_cache(tiny_teacher, tmp_path):
    folder = save_tiny_lm(tmp_path / "causal_lm", "gpt2", "right")
    config = base_config(tiny_teacher, tmp_path)
    settings = {"model": str(folder), "prompt": PROMPT, "verbalizers": VERBALIZERS, "tokenizer": str(tiny_teacher)}
    config["model"]["teacher"] = {"class_path": "CausalLMTeacher", "init_args": settings}
    config["model"]["teacher_cache"] = {"directory": str(tmp_path / "teacher_cache")}
    config["trainer"]["max_steps"] = 16  # two epochs of 128 rows: the second reads the cache
    run_cli("fit", "--config", str(write_config(tmp_path / "lm.yaml", config)), "--run_name", "lm")
    card = json.loads((tmp_path / "lm" / "student" / "card.json").read_text())
    assert card["teacher"]["class_path"] == "CausalLMTeacher" and "accuracy" in card["dev_metrics"]
    (cached,) = (tmp_path / "teacher_cache").iterdir()
    assert (cached / "manifest.json").is_file()  # the first epoch filled it, once per example


def test_an_lm_teacher_for_a_task_it_cannot_score_is_refused(tmp_path):
    from distill.plugins.teachers import CausalLMTeacher

    folder = save_tiny_lm(tmp_path / "lm", "gpt2", "right")
    with pytest.raises(DistillError, match=r"verbalizers names labels \['0'\], but task sst2 has \['0', '1'\]"):
        CausalLMTeacher(str(folder), PROMPT, {"0": " bad"}, task=sst2())
    regression = task_from_spec({"class_path": "Regression", "init_args": {"text_columns": ["sentence"]}})
    with pytest.raises(DistillError, match="the task must pick one label per example"):
        CausalLMTeacher(str(folder), PROMPT, {"score": " high"}, task=regression)


def test_a_token_tasks_soft_labels_land_on_each_words_first_piece(tmp_path):
    from types import SimpleNamespace

    import datasets

    from distill.delivery.batching import task_batches
    from distill.plugins.tasks import TokenClassification

    task = TokenClassification(labels=["B-PER", "O"])
    sentences = [["Peter", "Blackburnshire", "wins"], ["Rain"]]
    per_word = [[[0.9, 0.1], [0.2, 0.8], [0.0, 1.0]], [[0.5, 0.5]]]
    path = tmp_path / "tags.jsonl"
    path.write_text("".join(json.dumps({"B-PER": [w[0] for w in row], "O": [w[1] for w in row]}) + "\n"
                            for row in per_word))  # fmt: skip
    examples = datasets.Dataset.from_dict({"tokens": sentences, "labels": [[-100] * 3, [-100]], "idx": [0, 1]})
    teacher = SoftLabels(str(path), task=task)
    teacher.prepare(SimpleNamespace(read=lambda split: examples, notes={}, corpus=None))
    batch = task_batches(task, AutoTokenizer.from_pretrained(REFERENCE_TEACHER), examples, 2)[0]
    logits = teacher(batch, frozenset({"logits"})).logits
    compared = task.compared(logits, batch).softmax(-1)
    torch.testing.assert_close(compared, torch.tensor([w for row in per_word for w in row]), atol=1e-6, rtol=0)
    bad = tmp_path / "short.jsonl"
    bad.write_text(json.dumps({"B-PER": [0.1], "O": [0.9]}) + "\n" + json.dumps({"B-PER": [0.1], "O": [0.9]}) + "\n")
    with pytest.raises(DistillError, match="line 1: 1 words' values, but training example 1 has 3 words"):
        SoftLabels(str(bad), task=task).prepare(SimpleNamespace(read=lambda split: examples, notes={}, corpus=None))


def test_predict_runs_an_lm_teacher_alone_and_writes_a_soft_label_file_a_run_reads(tmp_path):
    from distill.plugins.teachers import CausalLMTeacher

    folder = save_tiny_lm(tmp_path / "causal_lm", "llama", "left")
    rows = tmp_path / "rows.jsonl"
    sentences = [r["sentence"] for r in sst2_rows(5)]
    rows.write_text("".join(json.dumps({"sentence": s}) + "\n" for s in sentences))
    spec = {"class_path": "CausalLMTeacher", "init_args": {"model": str(folder), "prompt": PROMPT,
                                                           "verbalizers": VERBALIZERS, "batch_size": 2}}  # fmt: skip
    out = tmp_path / "soft.jsonl"
    run_cli("predict", "--teacher", json.dumps(spec), "--task", "sst2", "--input", str(rows), "--output", str(out))
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["sentence"] for w in written] == sentences and "idx" not in written[0]
    expected = CausalLMTeacher(str(folder), PROMPT, VERBALIZERS, task=sst2()).score(
        [{"sentence": s} for s in sentences]
    )
    torch.testing.assert_close(torch.tensor([[w["logit_0"], w["logit_1"]] for w in written]), expected)
    soft = SoftLabels(str(out), task=sst2())
    assert soft.values == "logits" and "read the logit_<label> columns as logits" in soft.notes[0]
    assert "give --model (an export) or --teacher" in cli_error("predict", "--input", str(rows))


def test_a_file_teacher_refuses_an_augmentation_whose_new_rows_it_has_no_labels_for(
    logits_file, tiny_teacher, tmp_path
):
    config = base_config(tiny_teacher, tmp_path)
    settings = {"path": str(logits_file), "tokenizer": str(tiny_teacher)}
    config["model"]["teacher"] = {"class_path": "SoftLabels", "init_args": settings}
    config["data"]["augmentation"] = {"class_path": "TransferSet", "init_args": {"multiplier": 1}}
    message = cli_error("fit", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert "data.augmentation adds training rows, but the teacher (soft_labels) answers only" in message
