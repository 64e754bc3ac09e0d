"""Contract tests over the whole registry, as timm tests every model: a plugin is covered the day it registers.

Every registered task reads real rows, and every student family builds for it, trains a step on its label loss,
exports and reloads to the same outputs; every loss runs on every family that provides what it reads; every
compression method trains, finalises, exports and reloads to what the run served.

Tasks read real SST-2 sentences in each task's own shape: class names for classification, the gold label as a
score for regression, and for multi-label the gold label plus a second, independent label (more than ten words);
token classification reads real CoNLL-2003 sentences. Sentence-level families refuse token-level tasks in one line.
"""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
import torch.nn.functional as F

from distill import DataFiles, DistillError, Teacher, head_logits
from distill.compression import finalize, served_logits
from distill.delivery.batching import task_batches
from distill.delivery.export import export_student
from distill.delivery.folder import task_card
from distill.delivery.loading import load_model
from distill.loss import check_task_output
from distill.registry import registered, task_from_spec
from distill.training.module import DistillationModule
from tests.conftest import CONLL, REFERENCE_TEACHER, ROOT, SHARED, SST2
from tests.plugins.conftest import compress

STUDENTS, LOSSES, METHODS, TASKS = (sorted(registered(k)) for k in ("students", "losses", "compression", "tasks"))
TEXTS = [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:9]]


def offline_settings(name: str, tiny_teacher) -> dict:
    """Defaults, except where a default names the hub (unreachable here) or a file a search writes."""
    return {
        "PretrainedStudent": {"model": str(tiny_teacher)},
        "NasCnnStudent": {"genotype": str(ROOT / "configs" / "sst2" / "nas_cnn_genotype.json")},
        "StaticEmbeddingStudent": {"dim": 16},  # so the tiny teacher (width 32) can start one too
    }.get(name, {})


METHOD_SETTINGS = {  # which layers to drop, or how many words to keep, has no sensible default
    "LayerPruning": {"layers": [2]},
    "WordVectorElimination": {"keep": [6, 3]},
}
TASK_SETTINGS = {
    "MultiLabelClassification": {"label_columns": ["positive", "long"]},  # the labels are the columns
    "ExtractiveQA": {"stride": 16},  # windows of the tests' 64 tokens
    "SentenceEmbedding": {"pooling": "mean", "normalize": True, "width": 384},  # as the teacher would state them
}
TASK_SOURCES = {  # real CoNLL and SQuAD rows
    "TokenClassification": DataFiles(train=str(CONLL / "dev.txt"), format="conll"),
    "ExtractiveQA": DataFiles(train=str(SHARED / "data" / "squad-v2-sample" / "dev-v2.0-sample.json")),
}


def task_rows(count: int = 64) -> list[dict]:
    """Real SST-2 rows, with each built-in task's label columns."""
    rows = []
    for line in (SST2 / "train.tsv").read_text().splitlines()[1 : 1 + count]:
        text, label = line.split("\t")
        long = int(len(text.split()) > 10)
        names = ("negative", "positive")
        rows.append(
            {"text": text, "label": names[int(label)], "score": float(label), "positive": int(label), "long": long}
        )
    return rows


@pytest.fixture(scope="module")
def task_files(tmp_path_factory) -> DataFiles:
    path = tmp_path_factory.mktemp("task_rows") / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in task_rows()))
    return DataFiles(train=str(path), validation=str(path))


def make_task(name: str, task_files: DataFiles):
    settings = {"Regression": {"label_column": "score"}, **TASK_SETTINGS}.get(name, {})
    task = registered("tasks")[name][0](**settings)
    source = TASK_SOURCES.get(name, task_files)
    return task, task.read(source, "train", limit=64)


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    """The reference teacher: families' defaults are sized for a real encoder (a 300-wide BiLSTM table)."""
    return Teacher(str(REFERENCE_TEACHER))


@pytest.fixture(scope="module")
def batch(teacher) -> dict:
    encoded = dict(teacher.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return {**encoded, "labels": torch.tensor([0, 1] * 4), "idx": torch.arange(len(TEXTS))}


def build(name: str, teacher: Teacher, tiny_teacher) -> tuple:
    """(student, its task, its teacher): the family built for SST-2, or for sentence embeddings if it serves only
    those (a static student), with the teacher read as that task reads it."""
    config = registered("students")[name][0](**offline_settings(name, tiny_teacher))
    try:
        return config.build(teacher, task_from_spec("sst2")), task_from_spec("sst2"), teacher
    except DistillError:
        student, task, embedding_teacher = built(name, teacher, tiny_teacher)
        return copy.deepcopy(student), task, embedding_teacher


@functools.cache
def built(name: str, teacher: Teacher, tiny_teacher) -> tuple:
    """(student, task, teacher) of a family for sentence embeddings, built once per family: a static student's
    start reads the teacher's output for all 30,522 word pieces."""
    embedding = registered("tasks")["SentenceEmbedding"][0](**TASK_SETTINGS["SentenceEmbedding"])
    embedding_teacher = Teacher(teacher.source, embedding)
    config = registered("students")[name][0](**offline_settings(name, tiny_teacher))
    return config.build(embedding_teacher, embedding), embedding, embedding_teacher


def served(model, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return head_logits(model(**inputs))


@pytest.mark.parametrize("name", STUDENTS)
def test_every_student_family_trains_a_step_exports_and_reloads(name, teacher, tiny_teacher, batch, tmp_path):
    torch.manual_seed(0)
    student = build(name, teacher, tiny_teacher)[0].train()
    loss = F.cross_entropy(student(batch, frozenset({"logits"})).logits, batch["labels"])
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-3).step()
    student.eval()
    with torch.no_grad():
        expected = student(batch, frozenset({"logits"})).logits
    export_student(student, teacher.tokenizer, tmp_path / "export", {"task": "sst2"})
    model, _ = load_model(tmp_path / "export")
    with torch.no_grad():
        torch.testing.assert_close(served(model, batch), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("student_name", STUDENTS)
@pytest.mark.parametrize("task_name", TASKS)
def test_every_student_family_learns_every_task_exports_and_reloads(
    task_name, student_name, teacher, tiny_teacher, task_files, tmp_path
):
    task, rows = make_task(task_name, task_files)
    assert task_from_spec(json.loads(json.dumps(task.spec()))).labels == task.labels  # the spec round-trips
    batch = task_batches(task, teacher.tokenizer, rows.select(range(8)), 8, max_length=64)[0]  # as bench batches
    config = registered("students")[student_name][0](**offline_settings(student_name, tiny_teacher))
    torch.manual_seed(0)
    try:
        embedding = task.output == "embedding"  # built once per family, against the teacher read for embeddings
        student = (
            copy.deepcopy(built(student_name, teacher, tiny_teacher)[0]) if embedding else config.build(teacher, task)
        )
        student.train()
    except DistillError as refusal:  # a family that cannot serve the task says so, in one line
        assert (task.per_token or task.output != "embedding") and "\n" not in str(refusal)
        return
    logits = student(batch, frozenset({"logits"})).logits
    width = task.num_labels if task.output != "embedding" else student.anatomy.num_labels  # a Transformer's own width
    assert logits.shape[0] == len(batch["input_ids"]) >= 8 and logits.shape[-1] == width  # QA: windows
    # a task with gold labels trains on them; an embedding task has none (its target is the teacher's vectors)
    loss = task.label_loss(logits, batch["labels"]) if task.output != "embedding" else logits.square().mean()
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    student.eval()
    with torch.no_grad():
        expected = student(batch, frozenset({"logits"})).logits
    export_student(student, teacher.tokenizer, tmp_path / "export", task_card(task))
    model, _ = load_model(tmp_path / "export")
    with torch.no_grad():
        torch.testing.assert_close(served(model, batch), expected, atol=1e-5, rtol=1e-4)
    columns = task.prediction_columns(expected, batch, rows[:8])
    assert columns and all(len(values) == 8 for values in columns.values())


@pytest.mark.parametrize("student_name", STUDENTS)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_every_loss_runs_on_every_student_that_provides_what_it_reads(
    loss_name, student_name, teacher, tiny_teacher, batch
):
    student, task, teacher = build(student_name, teacher, tiny_teacher)
    student.train()
    term = registered("losses")[loss_name][0]()
    term.task = task  # as the module sets it before set-up
    try:
        check_task_output(term, task)
    except DistillError as refusal:  # class scores on an embedding task, or the reverse: refused in one line
        assert "\n" not in str(refusal) and task.output not in term.reads_outputs
        return
    if not term.needs <= student.anatomy.provides:  # then the run is refused at set-up, naming the loss
        config = registered("students")[student_name][0](**offline_settings(student_name, tiny_teacher))
        # an embedding student starts from the teacher's 30,522 piece vectors: the tiny teacher's take a second
        source = tiny_teacher if task.output == "embedding" else REFERENCE_TEACHER
        with pytest.raises(DistillError, match=f"loss '{term.name}' needs"):
            DistillationModule(task=task.spec(), student=config, losses=[term], teacher=str(source))
        return
    try:
        term.setup(student=student.anatomy, teacher=teacher.anatomy)
    except DistillError as refusal:  # a pair the maths rules out is refused before training, in one line
        assert str(refusal) and "\n" not in str(refusal)
        return
    teacher_features = teacher(batch, term.from_teacher) if term.from_teacher else None
    value = term(student(batch, frozenset({"logits"}) | term.needs), teacher_features, batch)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert any(p.grad is not None for p in student.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_every_compression_method_trains_finalises_exports_and_reloads(name, tiny_teacher, tmp_path):
    method = registered("compression")[name][0](**METHOD_SETTINGS.get(name, {}))
    module, _ = compress(tiny_teacher, tmp_path, [method], steps=40)  # enough for the defaults' schedules
    finalize(module.compression, module.student)
    card = export_student(module.student, module.tokenizer, tmp_path / "export", {}, module.compression)
    model, tokenizer = load_model(tmp_path / "export")  # its own tokenizer: vocabulary pruning renumbers pieces
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():  # what the finalised student serves: through a method (exits) or its own classifier
        expected = served_logits(module.compression, module.student, batch)
        if expected is None:
            expected = module.student(batch, frozenset({"logits"})).logits
        torch.testing.assert_close(served(model, batch), expected, atol=1e-4, rtol=1e-4)
    for variant in card.get("variants", {}):  # e.g. int8/: it loads and answers on the same rows
        quantized, _ = load_model(tmp_path / "export" / variant)
        assert served(quantized, batch).shape == expected.shape
