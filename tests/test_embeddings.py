"""Sentence embeddings: the task, its losses and metrics, the static student, and exports that
sentence-transformers and model2vec load to the same vectors; all on a tiny sentence-transformers teacher and
real rows (SQuAD 2.0 sample questions and paragraphs, SST-2 and CoNLL sentences)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from transformers import AutoTokenizer, BertModel

from benchmarks.embedding_data import write as write_embedding_data
from distill import GROUP, Features, Teacher
from distill.delivery.batching import model_inputs
from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.losses import EmbeddingCosine, EmbeddingMSE, MarginMSE, SimilarityKD
from distill.plugins.tasks import SentenceEmbedding
from distill.plugins.tasks.retrieval_scores import RetrievalScores, relevant_ranks, retrieval_scores
from distill.students.static import StaticEmbeddingStudent, piece_vectors, zipf_weights
from tests.conftest import REFERENCE_TEACHER, cli_error, run_cli, tiny_bert_config, write_config

TEXTS = ["Where is Normandy?", "The Normans settled in France.", "qwxz unheard-of words", "a film ."]


def save_embedding_teacher(folder: Path, sentence_transformers: bool = True) -> Path:
    """A tiny random BertModel saved as a sentence-transformers folder (mean pooling, normalised)."""
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(folder)
    if sentence_transformers:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
        )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def embedding_teacher(tmp_path_factory) -> Path:
    return save_embedding_teacher(tmp_path_factory.mktemp("embedding_teacher"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_embedding_data(tmp_path_factory.mktemp("embedding_data"), sst2=200, conll=100, queries=60)


def fit_config(root: Path, teacher: Path, data: dict[str, Path], student: dict, losses: list[dict]) -> Path:
    config = {
        "trainer": {"max_steps": 6, "val_check_interval": 3, "default_root_dir": str(root),
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"teacher": str(teacher), "student": student, "losses": losses, "learning_rate": 1e-3},
        "data": {"task": {"class_path": "SentenceEmbedding", "init_args": {"passages": str(data["passages"])}},
                 "files": {"train": str(data["corpus"]), "validation": str(data["queries"])},
                 "max_length": 64, "batch_size": 16, "train_limit": 96, "cache_dir": str(root / "cache")},
        "report": {"latency_rows": 16},
    }  # fmt: skip
    return write_config(root / "fit.yaml", config)


BERT = {"class_path": "BertStudent", "init_args": {"num_layers": 1, "init_from_teacher": [1]}}
STATIC = {"class_path": "StaticEmbeddingStudent", "init_args": {"dim": 16}}
LOSSES = [{"class_path": "EmbeddingMSE"}, {"class_path": "SimilarityKD"}]


@pytest.fixture(scope="module")
def bert_run(embedding_teacher, data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bert_run")
    run_cli("fit", "--config", str(fit_config(root, embedding_teacher, data, BERT, LOSSES)), "--run_name", "bert")
    return root / "bert"


@pytest.fixture(scope="module")
def static_run(embedding_teacher, data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("static_run")
    run_cli("fit", "--config", str(fit_config(root, embedding_teacher, data, STATIC, LOSSES)), "--run_name", "static")
    return root / "static"


def vectors(folder: Path, texts: list[str]) -> torch.Tensor:
    model, tokenizer = load_model(folder)
    with torch.no_grad():
        return model(**model_inputs(model, tokenizer(texts, padding=True, return_tensors="pt")))


# --- losses --------------------------------------------------------------------------------------------------


def features(rows: list[list[float]]) -> Features:
    return Features(logits=torch.tensor(rows), attention_mask=torch.ones(len(rows), 1))


def test_each_loss_matches_a_hand_computed_value():
    student, teacher = features([[1.0, 0.0], [0.0, 2.0]]), features([[1.0, 1.0], [0.0, 1.0]])
    mse = EmbeddingMSE()
    mse.setup(student_anatomy(2), student_anatomy(2))
    assert mse(student, teacher, {}).item() == pytest.approx((0 + 1 + 0 + 1) / 4)
    cosine = EmbeddingCosine()
    cosine.setup(student_anatomy(2), student_anatomy(2))
    assert cosine(student, teacher, {}).item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 0) / 2)
    matryoshka = EmbeddingMSE(dims=[1, 2])
    matryoshka.setup(student_anatomy(2), student_anatomy(2))
    matryoshka.projections = torch.nn.ModuleDict()  # leading width 1 read against the teacher's first column
    matryoshka.distance = lambda s, t: F.mse_loss(s, t[:, : s.shape[1]])
    assert matryoshka(student, teacher, {}).item() == pytest.approx(((0 + 0) / 2 + 0.5) / 2)

    # three texts: the student sees 1 and 2 alike (cos 1), the teacher sees them orthogonal; T = 1
    s, t = features([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), features([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    kd = SimilarityKD(temperature=1.0)
    kd.setup(student_anatomy(2), student_anatomy(2))

    def row_kl(theirs: list[float], ours: list[float]) -> float:
        p = [math.exp(x) / sum(math.exp(y) for y in theirs) for x in theirs]
        q = [math.exp(x) / sum(math.exp(y) for y in ours) for x in ours]
        return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    # similarities to the two other texts, per row: teacher [0,0], [0,1], [0,1]; student [1,0], [1,0], [0,0]
    expected = (row_kl([0, 0], [1, 0]) + row_kl([0, 1], [1, 0]) + row_kl([0, 1], [0, 0])) / 3
    assert kd(s, t, {}).item() == pytest.approx(expected, rel=1e-5)


def test_margin_mse_matches_a_hand_computed_value_on_the_whole_triplets_only():
    # rows: triplet 0, triplet 1, a corpus row, and two rows of triplet 2 (its third is in the next batch)
    s = features([[1.0, 0], [1, 0], [0, 1], [1, 0], [0, 1], [1, 0], [1, 1], [1, 0], [0, 1]])
    t = features([[1.0, 0], [1, 1], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0], [1, 0], [1, 0]])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, -1, 2, 2])
    loss = MarginMSE()
    loss.task = SentenceEmbedding(group_columns=["query", "positive", "negative"], width=2)
    loss.setup(student_anatomy(2), student_anatomy(2))
    # student margins: cos(q,p) - cos(q,n) = 1 - 0 and 0 - 1; teacher: 1/sqrt2 - 0 and 1 - 0
    expected = ((1 - 1 / math.sqrt(2)) ** 2 + (-1 - 1) ** 2) / 2
    assert loss(s, t, {GROUP: groups}).item() == pytest.approx(expected)
    assert loss(s, t, {GROUP: torch.full((9,), -1)}).item() == 0.0  # no whole triplet: nothing to compare


def test_margin_mse_without_three_group_columns_is_refused():
    loss = MarginMSE()
    loss.task = SentenceEmbedding(group_columns=["query", "positive"], width=2)
    with pytest.raises(DistillError, match="group_columns to the three columns"):
        loss.setup(student_anatomy(2), student_anatomy(2))
    with pytest.raises(DistillError, match="names one column"):
        SentenceEmbedding(group_columns=["query"])


def test_grouped_rows_share_a_batch_in_order_on_every_rank():
    from distill.training.sampling import GroupKeepingSampler

    groups = torch.tensor([0, 0, 0, -1, 1, 1, 1, -1, -1, 2, 2, 2, 3, 3, 3, -1])
    for replicas in (1, 2):
        shares = [list(GroupKeepingSampler(groups, 4, seed=3, rank=r, replicas=replicas)) for r in range(replicas)]
        seen = sorted(i for share in shares for i in share)
        assert len(seen) == len(set(seen)) == len(groups)  # every row once (16 rows split evenly)
        for share in shares:
            for i, j in zip(share, share[1:], strict=False):  # a group's rows follow each other in row order
                if groups[i] >= 0 and groups[j] == groups[i]:
                    assert j == i + 1
            members = {g: [i for i in share if groups[i] == g] for g in range(4)}
            assert all(len(rows) in (0, 3) for rows in members.values())  # no group split across ranks
    resumed = GroupKeepingSampler(groups, 4, seed=3)
    resumed.start = 5
    assert list(resumed) == list(GroupKeepingSampler(groups, 4, seed=3))[5:]


def test_margin_mse_trains_on_triplet_rows_end_to_end(embedding_teacher, data, tmp_path):
    config = yaml.safe_load(
        fit_config(tmp_path, embedding_teacher, data, BERT, [{"class_path": "MarginMSE"}]).read_text()
    )
    config["data"]["task"]["init_args"]["group_columns"] = ["query", "positive", "negative"]
    config["data"]["files"]["train"] = str(data["triplets"])
    config["data"]["batch_size"] = 12
    config["trainer"] |= {"max_steps": 4, "val_check_interval": 2, "log_every_n_steps": 1}
    run_cli("fit", "--config", str(write_config(tmp_path / "triplets.yaml", config)), "--run_name", "margin")
    metrics = (tmp_path / "margin" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    losses = [float(v) for v in _column(metrics, "train/margin_mse") if v]
    assert losses and all(math.isfinite(v) for v in losses) and any(v > 0 for v in losses)
    assert (tmp_path / "margin" / "student" / "modules.json").is_file()


def _column(csv_text: str, name: str) -> list[str]:
    lines = csv_text.splitlines()
    index = lines[0].split(",").index(name)
    return [line.split(",")[index] for line in lines[1:]]


def student_anatomy(width: int):
    from distill import Anatomy

    return Anatomy(family="test", provides=frozenset({"logits"}), num_labels=width, hidden_size=width)


# --- metrics -------------------------------------------------------------------------------------------------


def test_retrieval_metrics_on_five_hand_made_queries():
    passages = torch.eye(4)  # passage i points along axis i
    queries = torch.tensor([[1.0, 0, 0, 0], [0.9, 1.0, 0, 0], [0.5, 0.4, 1.0, 0], [1.0, 0.9, 0.8, 0.7], [0, 0, 0, 1.0]])
    relevant = torch.tensor([0, 1, 1, 3, 2])
    ranks = relevant_ranks(queries, passages, relevant)
    # query 3 reads 1.0 and 0.5 above its 0.4; the last scores 0 on three passages, and ties count against it
    assert ranks.tolist() == [0, 0, 2, 3, 3]
    scores = {k: v.item() for k, v in retrieval_scores(ranks).items()}
    assert scores["recall_at_1"] == pytest.approx(2 / 5)
    assert scores["recall_at_5"] == pytest.approx(1.0)
    assert scores["mrr_at_10"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 4 + 1 / 4) / 5)
    assert scores["ndcg_at_10"] == pytest.approx((1 + 1 + 1 / math.log2(4) + 2 / math.log2(5)) / 5)
    metric = RetrievalScores("mrr_at_10", sync_on_compute=False)  # batches in any order, a passage seen twice
    rows = torch.cat([queries, passages, passages[:1]])
    passage = torch.tensor([-1] * 5 + [0, 1, 2, 3, 0])
    labels = torch.cat([relevant, torch.full((5,), -100)])
    for part in torch.randperm(10).split(3):
        metric.update(rows[part], labels[part], passage[part])
    assert metric.compute().item() == pytest.approx(scores["mrr_at_10"])


# --- the static student --------------------------------------------------------------------------------------


def test_the_static_start_is_the_teachers_piece_vectors_reduced_and_zipf_weighted(embedding_teacher):
    task = SentenceEmbedding()
    teacher = Teacher(str(embedding_teacher), task)
    model = BertModel.from_pretrained(embedding_teacher).eval()
    pieces = torch.tensor([5, 1996, 3000, 29000])
    ids = torch.stack([torch.full_like(pieces, 101), pieces, torch.full_like(pieces, 102)], dim=1)
    with torch.no_grad():
        direct = model(input_ids=ids).last_hidden_state.mean(1)  # mean pooling, before the teacher's normalising
        every = piece_vectors(teacher, task)
    torch.testing.assert_close(every[pieces], direct, atol=1e-5, rtol=1e-4)
    student = StaticEmbeddingStudent(dim=8, sif_coefficient=1e-3).build(teacher, task)
    centred = every - every.mean(0)
    basis = torch.linalg.svd(centred.double(), full_matrices=False).Vh[:8].T.float()
    reduced = every @ basis
    gram = student.vectors.weight @ student.vectors.weight.T  # the basis' signs do not change a Gram matrix
    torch.testing.assert_close(gram[:50, :50], (reduced @ reduced.T)[:50, :50], atol=1e-4, rtol=1e-4)
    harmonic = sum(1 / r for r in range(1, len(teacher.tokenizer) + 1))
    for rank in (1, 100, 30000):
        p = (1 / rank) / harmonic
        assert student.weights[rank - 1].item() == pytest.approx(1e-3 / (1e-3 + p), rel=1e-5)
    assert torch.equal(zipf_weights(3, 0.5), zipf_weights(3, 0.5)) and student.normalize


def test_a_static_export_loads_in_model2vec_with_the_same_vectors(static_run):
    from model2vec import StaticModel

    export = static_run / "student"
    ours = vectors(export, TEXTS)
    theirs = torch.tensor(StaticModel.from_pretrained(str(export)).encode(TEXTS))
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    card = json.loads((export / "card.json").read_text())
    assert card["student_family"] == "static" and "mrr_at_10" in card["dev_metrics"]


# --- Transformer students, the CLI ---------------------------------------------------------------------------


def test_a_transformer_export_loads_in_sentence_transformers_with_the_same_vectors(bert_run):
    from sentence_transformers import SentenceTransformer

    export = bert_run / "student"
    theirs = torch.tensor(SentenceTransformer(str(export), device="cpu").encode(TEXTS))
    torch.testing.assert_close(theirs, vectors(export, TEXTS), atol=1e-5, rtol=1e-5)


def test_fit_export_predict_and_bench_on_real_rows(bert_run, static_run, embedding_teacher, data, tmp_path):
    report = json.loads((bert_run / "report.json").read_text())
    assert [r["model"] for r in report["rows"][:2]] == ["teacher", "student"]
    assert all(r["metric"] == "mrr_at_10" and 0 <= r["value"] <= 1 for r in report["rows"])
    teacher, student = report["rows"][:2]  # agreement with the teacher: itself exactly, the student less
    assert teacher["dev_teacher_cosine"] == pytest.approx(1) and teacher["dev_teacher_similarity_r"] == pytest.approx(1)
    assert -1 <= student["dev_teacher_cosine"] < 1 and -1 <= student["dev_teacher_similarity_r"] < 1
    run_cli("predict", "--model", str(bert_run / "student"), "--input", str(data["passages"]), "--output",
            str(tmp_path / "p.npy"))  # fmt: skip
    array = np.load(tmp_path / "p.npy")
    assert array.shape == (173, 32) and np.allclose(np.linalg.norm(array, axis=1), 1, atol=1e-5)
    run_cli("predict", "--model", str(static_run / "student"), "--input", str(data["passages"]), "--output",
            str(tmp_path / "p.parquet"))  # fmt: skip
    import pyarrow.parquet

    table = pyarrow.parquet.read_table(tmp_path / "p.parquet").to_pydict()
    assert len(table["embedding"]) == 173 and len(table["embedding"][0]) == 16
    exports = [str(bert_run / "student"), str(static_run / "student")]
    run_cli("bench", "--teacher", str(embedding_teacher), *exports, "--data", str(bert_run.parent / "fit.yaml"),
            "--out", str(tmp_path / "bench"), "--latency_rows", "8")  # fmt: skip
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"]
    assert len(rows) >= 3 and all(r["metric"] == "mrr_at_10" for r in rows)
    static = next(r for r in rows if r["model"] == "static")  # 16 wide against the teacher's 32: geometry only
    assert "dev_teacher_cosine" not in static and -1 <= static["dev_teacher_similarity_r"] <= 1


# --- bad input: one line each --------------------------------------------------------------------------------


def test_a_teacher_with_no_pooling_and_none_given_is_refused(data, tmp_path):
    plain = save_embedding_teacher(tmp_path / "plain", sentence_transformers=False)
    message = cli_error("fit", "--config", str(fit_config(tmp_path, plain, data, BERT, LOSSES)))
    assert "says nothing of its pooling" in message and "pooling: mean, cls or last" in message
    run_cli("fit", "--config", str(fit_config(tmp_path, plain, data, BERT, LOSSES)), "--run_name", "stated",
            "--data.task.init_args.pooling", "cls", "--report.enabled", "false")  # fmt: skip
    card = json.loads((tmp_path / "stated" / "student" / "card.json").read_text())
    assert card["task_spec"]["init_args"]["pooling"] == "cls"


def test_relevant_ids_missing_from_the_passages_are_refused_with_their_row(embedding_teacher, data, tmp_path):
    queries = tmp_path / "queries.jsonl"
    rows = data["queries"].read_text().splitlines()[:5] + [json.dumps({"query": "who?", "passage_id": "nowhere"})]
    queries.write_text("\n".join(rows) + "\n")
    message = cli_error("fit", "--config", str(fit_config(tmp_path, embedding_teacher, {**data, "queries": queries},
                                                          BERT, LOSSES)))  # fmt: skip
    assert "line 6" in message and "'nowhere' is not in the passage file" in message


def test_an_empty_corpus_is_refused(embedding_teacher, data, tmp_path):
    empty = tmp_path / "corpus.jsonl"
    empty.write_text("")
    message = cli_error("fit", "--config", str(fit_config(tmp_path, embedding_teacher, {**data, "corpus": empty},
                                                          BERT, LOSSES)))  # fmt: skip
    assert "corpus.jsonl" in message and ("no rows" in message or "empty" in message)


def test_losses_and_outputs_that_do_not_meet_are_refused(embedding_teacher, tiny_teacher, data, tmp_path):
    config = fit_config(tmp_path, embedding_teacher, data, BERT, [{"class_path": "LogitsKD"}])
    message = cli_error("fit", "--config", str(config))
    assert "loss 'logits' compares score/sigmoid/softmax outputs, but task embedding outputs embedding" in message
    sst2 = yaml.safe_load(config.read_text())
    sst2["model"]["teacher"] = str(tiny_teacher)
    sst2["data"] = {"task": "sst2", "data_dir": str(REFERENCE_TEACHER.parents[1] / "data" / "glue" / "SST-2"),
                    "train_limit": 32, "eval_limit": 16}  # fmt: skip
    sst2["model"]["losses"] = [{"class_path": "EmbeddingMSE"}]
    message = cli_error("fit", "--config", str(write_config(tmp_path / "sst2.yaml", sst2)))
    assert "compares embedding outputs, but task sst2 outputs softmax" in message


def test_a_static_student_refuses_a_tokenizer_model2vec_cannot_rebuild(embedding_teacher, monkeypatch):
    task = SentenceEmbedding()
    teacher = Teacher(str(embedding_teacher), task)
    monkeypatch.setattr(type(teacher.tokenizer), "is_fast", property(lambda self: False))
    with pytest.raises(DistillError, match="has no fast \\(tokenizer.json\\) form"):
        StaticEmbeddingStudent(dim=8).build(teacher, task)


@pytest.mark.slow  # two ONNX exports: CI runs it with the slow cells
def test_onnx_copies_of_both_exports_give_the_pytorch_vectors(bert_run, static_run):
    for export in (bert_run / "student", static_run / "student"):
        run_cli("export", "--model", str(export), "--onnx", "true")
        torch.testing.assert_close(vectors(export / "onnx" / "model.onnx", TEXTS), vectors(export, TEXTS),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
    import onnxruntime

    session, _ = load_model(export / "onnx" / "model.onnx")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():  # the report card's GPU row says why
        with pytest.raises(RuntimeError, match="no CUDAExecutionProvider here: install onnxruntime-gpu"):
            session.to("cuda")


def test_a_folder_model2vec_wrote_itself_loads_with_model2vecs_maths(embedding_teacher, tmp_path):
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    torch.manual_seed(0)
    table = torch.randn(30522, 12).numpy()
    tokenizer = Tokenizer.from_file(str(embedding_teacher / "tokenizer.json"))
    StaticModel(vectors=table, tokenizer=tokenizer, normalize=True).save_pretrained(str(tmp_path / "m2v"))
    theirs = torch.tensor(StaticModel.from_pretrained(str(tmp_path / "m2v")).encode(TEXTS))
    torch.testing.assert_close(vectors(tmp_path / "m2v", TEXTS), theirs, atol=1e-5, rtol=1e-5)


def test_spearman_over_a_scored_pairs_file(embedding_teacher, data, tmp_path):
    """Without passages, the validation file holds scored pairs, and the dev metric is Spearman's correlation."""
    from distill.plugins.tasks.retrieval_scores import PairScores

    metric = PairScores(sync_on_compute=False)
    vectors = torch.tensor([[1.0, 0], [1.0, 0], [1.0, 0], [0.0, 1], [1.0, 0], [1.0, 1]])  # cosines 1, 0, 0.71
    for part in ([0, 3, 5], [1, 2, 4]):  # a pair's two texts in different batches
        metric.update(
            vectors[part], torch.tensor([3.0, 3.0, 1.0, 1.0, 2.0, 2.0])[part], torch.tensor([0, 0, 1, 1, 2, 2])[part]
        )
    assert metric.compute().item() == pytest.approx(1.0, abs=1e-5)  # ranks agree: 1 > 0.71 > 0 and 3 > 2 > 1
    pairs = tmp_path / "pairs.jsonl"
    dev = (REFERENCE_TEACHER.parents[1] / "data/glue/SST-2/dev.tsv").read_text().splitlines()[1:41]
    texts = [line.split("\t")[0] for line in dev]
    pairs.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": i % 5}) + "\n"
                             for i, (a, b) in enumerate(zip(texts[::2], texts[1::2], strict=True))))  # fmt: skip
    config = yaml.safe_load(fit_config(tmp_path, embedding_teacher, data, BERT, LOSSES).read_text())
    config["data"]["task"]["init_args"] = {}
    config["data"]["files"]["validation"] = str(pairs)
    run_cli("fit", "--config", str(write_config(tmp_path / "pairs.yaml", config)), "--run_name", "pairs",
            "--report.enabled", "false")  # fmt: skip
    card = json.loads((tmp_path / "pairs" / "student" / "card.json").read_text())
    assert set(card["dev_metrics"]) >= {"spearman"} and -1 <= card["dev_metrics"]["spearman"] <= 1


@pytest.mark.slow  # two more fits: CI runs them with the slow cells
@pytest.mark.parametrize(
    ("student", "methods", "variant"),
    [
        (BERT, [{"class_path": "HeadPruning", "init_args": {"fraction": 0.5, "at": 0.0, "batches": 2}},
                {"class_path": "DynamicQuantization"}], "int8"),
        (STATIC, [{"class_path": "VocabularyPruning"}], None),
    ],
    ids=["pruned-heads-int8", "static-vocabulary-pruned"],
)  # fmt: skip
def test_compression_methods_compound_on_embedding_students(student, methods, variant, embedding_teacher, data,
                                                            tmp_path):  # fmt: skip
    config = yaml.safe_load(fit_config(tmp_path, embedding_teacher, data, student, LOSSES).read_text())
    config["model"]["compression"] = methods
    run_cli("fit", "--config", str(write_config(tmp_path / "c.yaml", config)), "--run_name", "c")
    export = tmp_path / "c" / "student"
    ours = vectors(export, TEXTS)
    assert ours.shape[0] == len(TEXTS) and torch.isfinite(ours).all()
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    models = [r["model"] for r in report["rows"]]
    assert "student" in models and (variant is None or f"student-{variant}" in models)
    if student is STATIC:  # fewer pieces, and model2vec still reads the same vectors
        from model2vec import StaticModel

        assert len(AutoTokenizer.from_pretrained(export)) < 30522
        theirs = torch.tensor(StaticModel.from_pretrained(str(export)).encode(TEXTS))
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_methods_that_need_class_scores_refuse_an_embedding_task(embedding_teacher, data, tmp_path):
    for method, reason in (("EarlyExit", "softmax over classes"), ("WordVectorElimination", "embedding outputs")):
        config = yaml.safe_load(fit_config(tmp_path, embedding_teacher, data, BERT, LOSSES).read_text())
        config["model"]["compression"] = [{"class_path": method}]
        if method == "WordVectorElimination":
            config["model"]["compression"][0]["init_args"] = {"keep": [8]}
        message = cli_error("fit", "--config", str(write_config(tmp_path / f"{method}.yaml", config)))
        assert method in message and reason in message and "\n" not in message
