"""Extractive QA on the real SQuAD 2.0 sample: reading SQuAD files, windows and offsets, span labels, the
post-processing and its official EM/F1, start/end distillation, bad input, and runs that train on four articles,
score on the fifth, export, reload and predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertForQuestionAnswering

from distill import DataFiles, DistillError, Features
from distill.delivery.batching import task_batches
from distill.delivery.loading import load_model
from distill.delivery.scoring import evaluate
from distill.plugins.losses import LogitsKD
from distill.plugins.tasks import ExtractiveQA
from distill.plugins.tasks.answer_scores import AnswerScores
from distill.plugins.tasks.extractive_qa import CONTEXT, OFFSETS, normalize_answer, token_f1
from distill.training.module import DistillationModule
from tests.conftest import REFERENCE_TEACHER, SHARED, cli_error, run_cli, tiny_bert_config, token_task_config

SAMPLE = SHARED / "data" / "squad-v2-sample" / "dev-v2.0-sample.json"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REFERENCE_TEACHER)


@pytest.fixture(scope="module")
def articles(tmp_path_factory) -> DataFiles:
    """Articles 1-4 of the sample to train on, article 5 (Victoria_(Australia)) to score on."""
    folder = tmp_path_factory.mktemp("squad")
    sample = json.loads(SAMPLE.read_text())
    for name, chosen in (("train", sample["data"][:4]), ("dev", sample["data"][4:])):
        (folder / f"{name}.json").write_text(json.dumps({"version": "v2.0", "data": chosen}))
    return DataFiles(train=str(folder / "train.json"), validation=str(folder / "dev.json"))


def squad_file(path: Path, context: str, answers: list[dict]) -> Path:
    qas = [{"id": "q1", "question": "Where is it?", "answers": answers, "is_impossible": not answers}]
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context,
                                                                                          "qas": qas}]}]}))  # fmt: skip
    return path


def test_squad_files_are_read_one_row_per_question(articles):
    task = ExtractiveQA()
    everything = task.read(DataFiles(train=str(SAMPLE)), "train")
    assert len(everything) == 1407 and sum(bool(texts) for texts in everything["answer_text"]) == 705
    assert task.no_answer is True  # discovered: the training split has unanswerable questions
    assert DataFiles(train=str(SAMPLE)).file_format("train") == "squad"
    dev = ExtractiveQA(no_answer=True).read(articles, "validation")
    assert len(dev) == 247 and "Victoria" in dev["context"][0]


def test_span_labels_map_back_to_the_answer_text_in_every_window(articles, tokenizer):
    task = ExtractiveQA(stride=32, no_answer=True)
    examples = task.read(articles, "validation")
    encoded = task.encode(examples.to_dict(), tokenizer, max_length=128)
    assert len(encoded["input_ids"]) > len(examples)  # long contexts were split into windows
    answers = dict(zip(examples["idx"], examples["answer_text"], strict=True))
    labelled = exact = 0
    for offsets, (first, last), example in zip(encoded[OFFSETS], encoded["labels"], encoded["idx"], strict=True):
        if (first, last) == (0, 0):
            continue
        labelled += 1
        span = examples["context"][example][offsets[first][0] : offsets[last][1]]
        assert answers[example][0] in span  # whole word pieces: "gold rush" is labelled on the piece "rushes"
        exact += normalize_answer(span) == normalize_answer(answers[example][0])
    assert labelled >= sum(bool(a) for a in answers.values())  # every answer is whole in at least one window
    assert exact / labelled > 0.97


def gold_logits(batch: dict) -> torch.Tensor:
    """Start and end logits that put all their mass on the labelled positions ([CLS] for no answer)."""
    logits = torch.zeros(*batch["input_ids"].shape, 2)
    rows = torch.arange(len(logits))
    logits[rows, batch["labels"][:, 0], 0] = 10.0
    logits[rows, batch["labels"][:, 1], 1] = 10.0
    return logits


@pytest.mark.parametrize("batch_size", [7, 512])
def test_post_processing_recovers_the_gold_answers_from_gold_logits(batch_size, articles, tokenizer):
    task = ExtractiveQA(stride=32, no_answer=True)
    examples = task.read(articles, "validation")
    metrics = task.build_metrics(prefix="", sync=False)
    for batch in task_batches(task, tokenizer, examples, batch_size, max_length=128):  # windows split across batches
        task.update_metrics(metrics, gold_logits(batch), batch)
    scores = {name: float(value) for name, value in metrics.compute().items()}
    assert scores["exact_match"] == pytest.approx(1.0) and scores["f1"] == pytest.approx(1.0)
    assert scores["has_answer_f1"] == pytest.approx(1.0) and scores["no_answer_accuracy"] == pytest.approx(1.0)


def test_no_answer_wins_only_by_more_than_the_threshold():
    window = {"example": torch.tensor([0]), "exact": torch.tensor([1.0]), "f1": torch.tensor([1.0])}
    for threshold, expected in ((0.0, 0.0), (5.0, 1.0)):  # null 12 against a span of 10
        metric = AnswerScores("f1", no_answer=True, threshold=threshold, sync_on_compute=False)
        metric.update(window["example"], torch.tensor([10.0]), torch.tensor([12.0]), window["exact"],
                      window["f1"], torch.tensor([False]))  # fmt: skip
        assert float(metric.compute()) == expected


def test_answers_are_scored_with_squads_normalisation():
    assert normalize_answer("The  Normans, in France!") == "normans in france"
    # "in 10th century" against "10th and 11th centuries": 1 common word, precision 1/3, recall 1/4
    assert token_f1("in the 10th century", "10th and 11th centuries") == pytest.approx(2 / 7)
    assert token_f1("", "") == 1.0 and token_f1("France", "") == 0.0


def test_start_and_end_are_distilled_as_distributions_over_positions(articles, tokenizer):
    task = ExtractiveQA(stride=32, no_answer=True)
    batch = task_batches(task, tokenizer, task.read(articles, "validation", limit=6), 6, max_length=128)[0]
    term = LogitsKD(temperature=2.0)
    term.task = task
    term.setup(None, None)
    torch.manual_seed(0)
    student, teacher = torch.randn(*batch["input_ids"].shape, 2), torch.randn(*batch["input_ids"].shape, 2)
    mask = batch["attention_mask"]
    loss = term(Features(student, mask), Features(teacher, mask), batch)
    noisy = student.clone()
    noisy[mask == 0] = 100.0  # padding takes no part
    assert torch.equal(term(Features(noisy, mask), Features(teacher, mask), batch), loss)
    expected = []
    for end in (0, 1):
        for row in range(len(student)):
            kept = mask[row].bool()
            p = F.softmax(teacher[row, kept, end] / 2.0, -1)
            expected.append((p * (p.log() - F.log_softmax(student[row, kept, end] / 2.0, -1))).sum() * 4.0)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)  # the mean of both KLs


def test_bad_answers_and_contexts_are_refused_with_their_place(tmp_path):
    shifted = squad_file(tmp_path / "shifted.json", "It is in Paris.", [{"text": "Paris", "answer_start": 3}])
    with pytest.raises(DistillError, match=r"1 of 1 questions .* have no answer whose text is found at its "
                                           r"answer_start.*'Paris' at 3 reads 'is in'"):  # fmt: skip
        ExtractiveQA().read(DataFiles(train=str(shifted)), "train")
    empty = squad_file(tmp_path / "empty.json", "  ", [])
    with pytest.raises(DistillError, match=r"empty.json\), question 1: the context is empty"):
        ExtractiveQA().read(DataFiles(train=str(empty)), "train")
    unanswerable = squad_file(tmp_path / "none.json", "It is in Paris.", [])
    with pytest.raises(DistillError, match="set data.task.init_args.no_answer: true"):
        ExtractiveQA(no_answer=False).read(DataFiles(train=str(unanswerable)), "train")


def test_a_few_misaligned_answers_are_skipped_and_reported(articles, tokenizer, tmp_path):
    sample = json.loads(Path(articles.train).read_text())
    first = sample["data"][0]["paragraphs"][0]["qas"][0]
    first["answers"] = [{**a, "answer_start": a["answer_start"] + 1} for a in first["answers"]]
    shifted = tmp_path / "train.json"
    shifted.write_text(json.dumps(sample))
    task = ExtractiveQA(stride=32)
    examples = task.read(DataFiles(train=str(shifted)), "train")
    assert len(examples) == 1159  # one of 1160 skipped: below the 1% threshold
    encoded = examples.map(task.encode, batched=True, fn_kwargs={"tokenizer": tokenizer, "max_length": 128},
                           remove_columns=examples.column_names)  # fmt: skip
    notes = task.notes(examples, encoded, 128)
    assert notes[0].startswith("1 of 1160 questions skipped: no answer matches the context at its answer_start")
    assert "contexts are longer than max_length 128" in notes[1]
    with pytest.raises(DistillError, match="more than data.task.init_args.max_misaligned"):
        ExtractiveQA(max_misaligned=0.0).read(DataFiles(train=str(shifted)), "train")


def test_a_question_that_leaves_no_room_for_context_is_refused(articles, tokenizer):
    task = ExtractiveQA(stride=32, no_answer=True)
    rows = task.read(articles, "validation", limit=2).to_dict()
    with pytest.raises(DistillError, match=r"row 1 is \d+ word pieces long: with data.max_length 40"):
        task.encode(rows, tokenizer, max_length=40)


@pytest.fixture(scope="module")
def qa_teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qa_teacher")
    torch.manual_seed(0)
    BertForQuestionAnswering(tiny_bert_config()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(folder)
    return folder


def qa_config(teacher: Path, root: Path, files: DataFiles, student: dict | None = None, hidden: bool = True) -> Path:
    data = {
        "task": {"class_path": "ExtractiveQA", "init_args": {"stride": 32, "name": "squad_sample"}},
        "files": {"train": files.train, "validation": files.validation},
        "train_limit": 96, "eval_limit": 48, "max_length": 128,
    }  # fmt: skip
    return token_task_config(teacher, root, data, student, hidden=hidden, latency_rows=8)


def test_qa_trains_exports_reloads_and_predicts_answers(qa_teacher, articles, tokenizer, tmp_path):
    run_cli("fit", "--config", str(qa_config(qa_teacher, tmp_path, articles)), "--run_name", "qa")
    export = tmp_path / "qa" / "student"
    card = json.loads((export / "card.json").read_text())
    assert card["task"] == "squad_sample" and {"exact_match", "f1", "no_answer_accuracy"} <= set(card["dev_metrics"])
    report = json.loads((tmp_path / "qa" / "report.json").read_text())
    assert report["rows"][0]["metric"] == "f1"
    assert (
        "| model | exact match | f1 | has answer f1 | no answer accuracy |"
        in (tmp_path / "qa" / "report.md").read_text()
    )
    module = DistillationModule.load_from_checkpoint(card["checkpoint"]).eval()
    reloaded = AutoModelForQuestionAnswering.from_pretrained(export).eval()
    examples = module.task.read(articles, "validation", limit=12)
    batches = task_batches(module.task, tokenizer, examples, 64, max_length=128)
    inputs = {k: batches[0][k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        output = reloaded(**inputs)
        served = torch.stack([output.start_logits, output.end_logits], -1)
        torch.testing.assert_close(served, module.student(batches[0], frozenset({"logits"})).logits)
    assert evaluate(reloaded, batches, module.task) == evaluate(load_model(export)[0], batches, module.task)
    run_cli("export", "--model", str(export), "--onnx", "true")  # kept only if onnxruntime agrees with PyTorch
    assert (export / "onnx" / "model.onnx").is_file() and (export / "onnx" / "model_static_int8.onnx").is_file()
    questions = tmp_path / "questions.jsonl"
    rows = [{"question": q, "context": c} for q, c in zip(examples["question"], examples["context"], strict=True)]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run_cli("predict", "--model", str(export), "--input", str(questions))
    predicted = [json.loads(line) for line in (tmp_path / "questions.predictions.jsonl").read_text().splitlines()]
    assert len(predicted) == 12
    for row in predicted:  # each answer is the context's text at answer_start, or "" for no answer
        start = row["answer_start"]
        assert (row["answer"] == "") if start < 0 else row["context"][start:].startswith(row["answer"])
    metrics = module.task.build_metrics("", sync=False)
    for batch in batches:
        module.task.update_metrics(metrics, module.student(batch, frozenset({"logits"})).logits, batch)
    assert {len(b[CONTEXT]) for b in batches} and metrics.compute()["f1"] >= 0


def test_a_bilstm_answers_from_its_states_at_each_position(qa_teacher, articles, tmp_path):
    student = {"class_path": "BiLSTMStudent", "init_args": {"embedding_dim": 32, "hidden_size": 16, "mlp_size": 16}}
    run_cli("fit", "--config", str(qa_config(qa_teacher, tmp_path, articles, student, hidden=False)), "--run_name", "b")
    card = json.loads((tmp_path / "b" / "student" / "card.json").read_text())
    assert card["student_family"] == "bilstm" and "f1" in card["dev_metrics"]


def test_a_sentence_student_is_refused_for_qa(qa_teacher, articles, tmp_path):
    path = qa_config(qa_teacher, tmp_path, articles, {"class_path": "CNNStudent"}, hidden=False)
    message = cli_error("fit", "--config", str(path), "--run_name", "refused")
    assert "CNNStudent predicts one label per example" in message and not (tmp_path / "refused").exists()
