"""Token classification on real CoNLL-2003 rows: reading, word-piece alignment, the entity metric, per-token
distillation, and a run through the CLI that exports, reloads and predicts."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from transformers import AutoModelForTokenClassification, AutoTokenizer, BertForTokenClassification

from distill import DataFiles, DistillError, Features
from distill.delivery.batching import task_batches
from distill.delivery.loading import load_model
from distill.delivery.scoring import evaluate
from distill.plugins.losses import LogitsKD
from distill.plugins.tasks import TokenClassification
from distill.plugins.tasks.entity_scores import EntityScores
from distill.plugins.tasks.tokens import WORD_INDEX, entity_spans
from distill.training.module import DistillationModule
from tests.conftest import (
    CONLL,
    REFERENCE_TEACHER,
    cli_error,
    run_cli,
    tiny_bert_config,
    token_task_config,
    write_config,
)

DEV = DataFiles(validation=str(CONLL / "dev.txt"), format="conll")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REFERENCE_TEACHER)


def read_dev(task: TokenClassification, limit: int = 64):
    task.labels = task.labels or ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
    return task.read(DEV, "validation", limit=limit)


def test_conll_files_are_read_with_their_sentences_and_a_bad_line_is_named(tmp_path):
    task = TokenClassification()
    train = task.read(DataFiles(train=str(CONLL / "train.txt"), format="conll"), "train")
    assert len(train) == 14041 and task.labels[-1] == "O" and len(task.labels) == 9
    assert len(task.read(DEV, "validation")) == 3250
    broken = tmp_path / "bad.conll"
    broken.write_text("-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\nGerman JJ\n")
    with pytest.raises(DistillError, match=r"bad.conll, line 5: 2 column\(s\) where the file's lines have 3"):
        TokenClassification().read(DataFiles(train=str(broken)), "train")


def test_a_validation_tag_never_seen_in_training_is_refused(tmp_path):
    (tmp_path / "train.conll").write_text("EU B-ORG\nrejects O\n")
    (tmp_path / "dev.conll").write_text("Paris B-LOC\n")
    files = DataFiles(train=str(tmp_path / "train.conll"), validation=str(tmp_path / "dev.conll"))
    task = TokenClassification()
    task.read(files, "train")
    with pytest.raises(DistillError, match=r"dev.conll\), sentence 1: tag 'B-LOC' is not among the tags seen"):
        task.read(files, "validation")


@pytest.mark.parametrize("all_pieces", [False, True])
def test_labels_align_to_word_pieces_and_map_back_to_words(all_pieces, tokenizer):
    task = TokenClassification(label_all_pieces=all_pieces)
    rows = read_dev(task)
    encoded = task.encode(rows.to_dict(), tokenizer, max_length=512)
    split_words = 0
    for tags, pieces, labels in zip(rows["labels"], encoded[WORD_INDEX], encoded["labels"], strict=True):
        first = {}
        for position, word in enumerate(pieces):
            if word < 0:
                assert labels[position] == -100  # [CLS], [SEP]
            elif word not in first:
                first[word] = labels[position]
            else:
                split_words += 1
                assert labels[position] == (tags[word] if all_pieces else -100)
        assert [first[i] for i in range(len(tags))] == tags  # each word's first piece carries its tag
    assert split_words > 0  # real rows do split words into pieces


def test_entity_spans_and_scores_match_hand_counted_spans():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC"]) == [
        ("PER", 0, 2),
        ("LOC", 3, 5),
        ("LOC", 5, 6),
    ]
    assert entity_spans(["I-ORG", "O", "B-PER", "I-LOC"]) == [("PER", 2, 3)]  # strict: a stray I- opens nothing
    tags = ["B-PER", "I-PER", "B-LOC", "O"]
    gold = torch.tensor([[0, 1, 3, 2, -100], [2, 3, 3, 3, 3]])  # PER(0,2) LOC(3,4) | LOC(0,1)
    predicted = torch.tensor([[0, 1, 3, 3, 0], [2, 3, 0, 1, 3]])  # PER(0,2)       | LOC(0,1) PER(2,4)
    scores = {which: float(EntityScores(tags, which)(predicted, gold)) for which in ("entity_precision",
              "entity_recall", "entity_f1", "token_accuracy")}  # fmt: skip
    # Predicted 3 entities, 2 of them right; 3 gold entities, 2 found; 6 of 9 labelled tokens right.
    assert scores["entity_precision"] == pytest.approx(2 / 3) and scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3) and scores["token_accuracy"] == pytest.approx(6 / 9)


def test_per_token_distillation_reads_only_labelled_positions(tokenizer):
    task = TokenClassification()
    batch = task_batches(task, tokenizer, read_dev(task, limit=4), 4)[0]
    term = LogitsKD(temperature=2.0)
    term.task = task
    term.setup(None, None)
    torch.manual_seed(0)
    student, teacher = torch.randn(*batch["input_ids"].shape, 9), torch.randn(*batch["input_ids"].shape, 9)
    mask = batch["attention_mask"]
    loss = term(Features(student, mask), Features(teacher, mask), batch)
    noisy = student.clone()
    noisy[batch["labels"] == -100] = 100.0  # special tokens, continuation pieces and padding
    assert torch.equal(term(Features(noisy, mask), Features(teacher, mask), batch), loss)
    kept = batch["labels"] != -100
    p = F.softmax(teacher[kept] / 2.0, -1)
    expected = (p * (p.log() - F.log_softmax(student[kept] / 2.0, -1))).sum(-1).mean() * 4.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_corpus_sentence_is_compared_at_every_words_first_piece(tokenizer):
    task = TokenClassification()
    words = ["Unlabelled", "Reuters", "text", "about", "Leicestershire"]
    untagged = datasets.Dataset.from_dict({"tokens": [words], "labels": [[-100] * len(words)], "idx": [0]})
    batch = task_batches(task, tokenizer, untagged, 1)[0]
    logits = torch.arange(batch["input_ids"].shape[1], dtype=torch.float).view(1, -1, 1)
    firsts = [i for i, w in enumerate(batch["word_index"][0].tolist()) if w >= 0 and w != batch["word_index"][0, i - 1]]
    assert len(firsts) == len(words) and task.compared(logits, batch).flatten().tolist() == firsts


def test_a_teacher_labelled_corpus_trains_ner_end_to_end(token_teacher, tmp_path):
    sentences = tmp_path / "unlabelled.txt"  # CoNLL training sentences far past the labelled rows, tags dropped
    blocks = (CONLL / "train.txt").read_text().split("\n\n")[2000:2064]
    words = [[line.split()[0] for line in block.splitlines() if line.strip()] for block in blocks]
    sentences.write_text("".join(" ".join(sentence) + "\n" for sentence in words))
    config = yaml.safe_load(ner_config(token_teacher, tmp_path, hidden=False).read_text())
    config["data"]["corpus"] = {"path": str(sentences)}
    run_cli("fit", "--config", str(write_config(tmp_path / "corpus.yaml", config)), "--run_name", "corpus")
    export = tmp_path / "corpus" / "student"
    card = json.loads((export / "card.json").read_text())
    assert card["config"]["data"]["corpus"]["path"] == str(sentences) and "entity_f1" in card["dev_metrics"]
    metrics = (tmp_path / "corpus" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "train/logits" in metrics
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"tokens": sentence}) + "\n" for sentence in words))
    run_cli("predict", "--model", str(export), "--input", str(rows), "--output", str(tmp_path / "tags.jsonl"))
    tagged = [json.loads(line) for line in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert len(tagged) == 64 and all(len(t["tags"].split()) == len(t["tokens"]) for t in tagged)


@pytest.fixture(scope="module")
def token_teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("token_teacher")
    torch.manual_seed(0)
    BertForTokenClassification(tiny_bert_config(num_labels=9)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(folder)
    return folder


def ner_config(
    teacher: Path, root: Path, student: dict | None = None, compression: list | None = None, hidden: bool = True
) -> Path:
    data = {
        "task": {"class_path": "TokenClassification", "init_args": {"name": "conll2003"}},
        "files": {"train": str(CONLL / "train.txt"), "validation": str(CONLL / "dev.txt"), "format": "conll"},
        "train_limit": 128, "eval_limit": 64, "max_length": 64,
        "eval_batch_size": 16,  # dev batches of different lengths, which the teacher check at fit start must take
    }  # fmt: skip
    return token_task_config(teacher, root, data, student, compression, hidden)


def test_ner_trains_exports_reloads_and_predicts_entities(token_teacher, tokenizer, tmp_path):
    run_cli("fit", "--config", str(ner_config(token_teacher, tmp_path)), "--run_name", "ner")
    export = tmp_path / "ner" / "student"
    card = json.loads((export / "card.json").read_text())
    assert card["task"] == "conll2003" and len(card["labels"]) == 9 and "entity_f1" in card["dev_metrics"]
    assert json.loads((tmp_path / "ner" / "report.json").read_text())["rows"][0]["metric"] == "entity_f1"
    module = DistillationModule.load_from_checkpoint(card["checkpoint"]).eval()
    reloaded = AutoModelForTokenClassification.from_pretrained(export).eval()
    assert reloaded.config.id2label[8] == "O"
    batch = task_batches(module.task, tokenizer, read_dev(TokenClassification(), limit=8), 8)[0]
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, module.student(batch, frozenset({"logits"})).logits)
    sentences = tmp_path / "sentences.jsonl"
    sentences.write_text(json.dumps({"tokens": ["Peter", "Blackburn", "visited", "Leicester", "."]}) + "\n")
    run_cli("predict", "--model", str(export), "--input", str(sentences))
    row = json.loads((tmp_path / "sentences.predictions.jsonl").read_text())
    assert len(row["tags"].split()) == 5 and all(tag in card["labels"] for tag in row["tags"].split())
    sentence = " ".join(["Peter", "Blackburn", "visited", "Leicester", "."])
    assert all({"type", "text", "first_word", "last_word", "start", "end"} == set(e) for e in row["entities"])
    assert all(sentence[e["start"] : e["end"]] == e["text"] for e in row["entities"])


def test_a_bilstm_labels_every_token_and_reloads_to_the_same_predictions(token_teacher, tokenizer, tmp_path):
    student = {"class_path": "BiLSTMStudent", "init_args": {"embedding_dim": 32, "hidden_size": 16, "mlp_size": 16}}
    config = ner_config(token_teacher, tmp_path, student=student, hidden=False)  # a BiLSTM has no layers to map
    run_cli("fit", "--config", str(config), "--run_name", "bilstm")
    card = json.loads((tmp_path / "bilstm" / "student" / "card.json").read_text())
    assert card["student_family"] == "bilstm" and "entity_f1" in card["dev_metrics"]
    module = DistillationModule.load_from_checkpoint(card["checkpoint"]).eval()
    model, _ = load_model(tmp_path / "bilstm" / "student")
    batch = task_batches(module.task, tokenizer, read_dev(TokenClassification(), limit=8), 8)[0]
    with torch.no_grad():
        expected = module.student(batch, frozenset({"logits"})).logits
        assert expected.shape[:2] == batch["input_ids"].shape
        torch.testing.assert_close(model(batch["input_ids"], batch["attention_mask"]), expected)


def test_a_compound_run_on_ner_completes(token_teacher, tmp_path):
    methods = [
        {"class_path": "HeadPruning", "init_args": {"fraction": 0.25}},
        {"class_path": "QuantizationAwareTraining"},
    ]
    run_cli("fit", "--config", str(ner_config(token_teacher, tmp_path, compression=methods)), "--run_name", "c")
    card = json.loads((tmp_path / "c" / "student" / "card.json").read_text())
    assert "entity_f1" in card["dev_metrics"] and (tmp_path / "c" / "student" / "int8").is_dir()


@pytest.mark.parametrize(
    ("student", "compression", "expected"),
    [
        (
            {"class_path": "CNNStudent"},
            None,
            "CNNStudent predicts one label per example; task conll2003 needs one per token",
        ),
        (None, [{"class_path": "EarlyExit"}], "EarlyExit decides per example"),
    ],
)
def test_what_cannot_serve_tokens_is_refused_in_one_line(student, compression, expected, token_teacher, tmp_path):
    path = ner_config(token_teacher, tmp_path, student=student, compression=compression)
    message = cli_error("fit", "--config", str(path), "--run_name", "refused")
    assert expected in message and "\n" not in message and not (tmp_path / "refused").exists()


def test_sentences_cut_by_max_length_are_counted_not_silent(tokenizer, tmp_path):
    task = TokenClassification()
    examples = read_dev(task, limit=64)
    encoded = examples.map(task.encode, batched=True, fn_kwargs={"tokenizer": tokenizer, "max_length": 16})
    (note,) = task.notes(examples, encoded, 16)
    longer = sum(len(tokenizer(words, is_split_into_words=True)["input_ids"]) > 16 for words in examples["tokens"])
    assert note.startswith(f"{longer} of 64 sentences are longer than max_length 16 word pieces") and longer > 0
    assert task.notes(examples, examples.map(task.encode, batched=True, fn_kwargs={"tokenizer": tokenizer,
                      "max_length": 512}), 512) == []  # fmt: skip


def test_predicted_entities_carry_their_character_spans():
    task = TokenClassification(labels=["B-PER", "I-PER", "O"])
    logits = torch.zeros(1, 6, 3)
    for position, tag in enumerate([2, 0, 1, 2, 0, 2]):  # [CLS] B-PER I-PER O B-PER [SEP]
        logits[0, position, tag] = 5.0
    batch = {WORD_INDEX: torch.tensor([[-1, 0, 1, 2, 3, -1]])}
    words = ["Peter", "Blackburn", "met", "Ann"]
    (entities,) = task.prediction_columns(logits, batch, {"tokens": [words]})["entities"]
    assert [(e["text"], e["start"], e["end"]) for e in entities] == [("Peter Blackburn", 0, 15), ("Ann", 20, 23)]


@pytest.mark.parametrize(
    "method",
    [
        {"class_path": "MagnitudePruning", "init_args": {"sparsity": 0.5}},
        {"class_path": "MovementPruning", "init_args": {"sparsity": 0.5}},
        {"class_path": "NeuronPruning"},
        {"class_path": "LayerPruning", "init_args": {"layers": [2]}},
        {"class_path": "VocabularyPruning"},
    ],
    ids=lambda method: method["class_path"],
)
def test_each_pruning_method_on_ner_exports_a_model_that_scores_as_trained(method, token_teacher, tokenizer, tmp_path):
    student = {"class_path": "BertStudent", "init_args": {"num_layers": 2, "init_from_teacher": [0, 1]}}
    run_cli("fit", "--config", str(ner_config(token_teacher, tmp_path, student, [method])), "--run_name", "p")
    export = tmp_path / "p" / "student"
    card = json.loads((export / "card.json").read_text())
    model, own_tokenizer = load_model(export)  # pruned exports load with distill's loader
    task = TokenClassification(**card["task_spec"]["init_args"])
    batches = task_batches(task, own_tokenizer, task.read(DEV, "validation", limit=64), 64, max_length=64)
    scored = evaluate(model, batches, task)["entity_f1"]
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert scored == pytest.approx(next(r["value"] for r in report["rows"] if r["model"] == "student"), abs=1e-6)
    if method["class_path"] != "VocabularyPruning":  # its export reads dev pieces unseen in training as [UNK]
        assert scored == pytest.approx(card["dev_metrics"]["entity_f1"], abs=1e-6)


def test_a_token_task_caches_its_per_token_logits_and_hidden_states(token_teacher, tmp_path):
    """128 sentences in batches of 16 for 24 steps: three epochs, read from the cache after the first."""
    config = yaml.safe_load(ner_config(token_teacher, tmp_path).read_text())
    config["model"]["teacher_cache"] = {"directory": str(tmp_path / "teacher"), "features": ["logits", "hidden_states"]}
    config["trainer"].update(max_steps=24, val_check_interval=8)
    run_cli("fit", "--config", str(write_config(tmp_path / "cached.yaml", config)), "--run_name", "cached")
    (folder,) = (tmp_path / "teacher").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["per_token"] == ["hidden_states.0", "hidden_states.2", "logits"]  # uniform map of 1 layer onto 2
    assert np.load(folder / "filled.npy").all()
    logits = np.load(folder / "logits.npy")
    assert logits.shape == (manifest["tokens"], 9) and np.isfinite(logits).all() and np.abs(logits).sum() > 0
