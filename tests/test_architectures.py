"""The architecture-adapter contract over every built-in family, each from a tiny random config (no downloads).

Each family is the teacher and the student of its cells. A cell fits a few steps on real SST-2 rows, exports,
and reloads to the outputs the trained student gives; cells the maths rules out are refused with their message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from distill import TransformerTap
from distill.architecture import architecture_of
from distill.compression import served_logits
from distill.delivery.batching import model_inputs
from distill.delivery.loading import load_model
from distill.delivery.measure import count_parameters
from distill.errors import DistillError
from distill.plugins.early_exit import EarlyExit
from distill.plugins.losses import AttentionKD, HardLabelCE, HiddenStatesKD, LogitsKD, ValueRelationKD
from distill.plugins.pruning import HeadPruning, LayerPruning, NeuronPruning, VocabularyPruning
from distill.plugins.quantization import QuantizationAwareTraining
from distill.students.encoder import EncoderStudent
from distill.training.module import DistillationModule
from tests.conftest import REFERENCE_TEACHER, RTE, SST2, base_config, run_cli, save_teacher, write_config
from tests.families import FAMILIES, VOCABULARY, matrix, tiny_config
from tests.plugins.conftest import DEV_TEXTS, compress, export

ADAPTED = tuple(f for f in FAMILIES if f != "xlm-roberta")  # XLM-R is RoBERTa's adapter; it has the loss cell


def outputs(model, tokenizer, texts: list[str] = DEV_TEXTS[:8]) -> torch.Tensor:
    """Logits of a loaded export or of a module's student, each fed only the inputs it reads."""
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        if isinstance(model, DistillationModule):
            served = served_logits(model.compression, model.student, batch)
            return served if served is not None else model.student(batch, frozenset({"logits"})).logits
        output = model(**model_inputs(model, batch))
    return output.logits if hasattr(output, "logits") else output


def fit(teacher: Path, tmp_path: Path, losses: list, compression: list = (), **student) -> DistillationModule:
    settings = {"num_layers": 2, "init_embeddings": "teacher", **student}
    module, _ = compress(
        teacher, tmp_path, list(compression), steps=3, student=EncoderStudent(**settings), losses=losses
    )
    return module


def exported_matches(module: DistillationModule, folder: Path) -> torch.nn.Module:
    """Export the module's student and check the reload gives the trained student's outputs."""
    export(module, folder)
    expected = outputs(module, module.tokenizer)
    loaded, tokenizer = load_model(folder)
    torch.testing.assert_close(outputs(loaded, tokenizer), expected, atol=1e-5, rtol=1e-4)
    return loaded


def test_every_family_captures_features_and_runs_layer_by_layer_like_its_own_forward():
    ids = torch.randint(1000, 2000, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:], mask[2, 5:] = 0, 0
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    for family in FAMILIES:
        torch.manual_seed(0)
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_config(tiny_config(family)).eval()
        adapter = architecture_of(model)
        features = TransformerTap(model).run(model, batch, frozenset({"attentions", "values", "hidden_states"}))
        depth = len(adapter.layers(model))
        assert len(features.queries) == len(features.keys) == len(features.values) == depth, family
        assert features.queries[0].shape == (3, 4, 12, 8), family
        with torch.no_grad():
            for rows in (slice(None), slice(1, None)):  # the whole batch, and a subset of its rows
                part = {k: v[rows] for k, v in batch.items()}
                hidden = adapter.embed(model, part)
                for index in range(depth):
                    hidden = adapter.run_layer(model, index, hidden, part["attention_mask"])
                    if index < depth - 1:  # ramps read these: they must be the model's own hidden states
                        torch.testing.assert_close(hidden, features.hidden_states[index + 1][rows], msg=family)
                logits = adapter.classify(model, hidden, part["attention_mask"])
                torch.testing.assert_close(logits, features.logits[rows], atol=1e-5, rtol=1e-4, msg=family)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_distils_with_every_loss_and_reloads(family, family_teachers, tmp_path):
    losses = [
        HardLabelCE(weight=0.5),
        LogitsKD(weight=0.5),
        HiddenStatesKD(weight=1.0),
        AttentionKD(weight=1.0),
        ValueRelationKD(weight=1.0),
    ]
    module = fit(family_teachers[family], tmp_path, losses, hidden_size=24, num_heads=4, intermediate_size=48)
    loaded = exported_matches(module, tmp_path / "export")
    assert architecture_of(loaded).name == architecture_of(module.teacher.model).name
    assert loaded.config.hidden_size == 24


METHODS = {
    "heads": lambda: [HeadPruning(fraction=0.5, at=0.0, batches=1)],
    "neurons": lambda: [NeuronPruning(fraction=0.5, at=0.0, batches=1)],
    "layers": lambda: [LayerPruning(layers=[2])],
    "qat": lambda: [QuantizationAwareTraining()],
    "early_exit": lambda: [EarlyExit(threshold=0.69, settle=0.0)],
    "vocabulary": lambda: [VocabularyPruning()],
}


REFUSED = {  # the cells the family's maths rules out, or (ModernBERT's special ids lie beyond the test tokenizer,
    # so its embedding keeps rows the tokenizer never names) the test's own tokenizer does
    ("mpnet", "heads"): "heads cannot be cut layer by layer",
    ("modernbert", "vocabulary"): "VocabularyPruning found no 30522-row word embedding",
}
TRAINING_TEXTS = [line.split("\t")[0] for line in (SST2 / "train.tsv").read_text().splitlines()[1:9]]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", matrix(ADAPTED))
def test_each_family_takes_every_compression_method_and_reloads(family, method, family_teachers, tmp_path):
    teacher = family_teachers[family]
    losses = [LogitsKD(weight=1.0), HiddenStatesKD(weight=1.0)]
    if (family, method) in REFUSED:
        with pytest.raises(DistillError, match=REFUSED[family, method]):
            fit(teacher, tmp_path, losses, METHODS[method](), num_layers=3)
        return
    module = fit(teacher, tmp_path, losses, METHODS[method](), num_layers=3)
    if method == "vocabulary":  # the export renumbers the pieces the training rows use: compare on those rows
        expected = outputs(module, module.tokenizer, TRAINING_TEXTS)
        export(module, tmp_path / "export")
        loaded, small = load_model(tmp_path / "export")
        assert len(small) == loaded.get_input_embeddings().num_embeddings < VOCABULARY
        torch.testing.assert_close(outputs(loaded, small, TRAINING_TEXTS), expected, atol=1e-5, rtol=1e-4)
        return
    before = count_parameters(module.student.model)["total"]
    loaded = exported_matches(module, tmp_path / "export")
    after = count_parameters(getattr(loaded, "model", loaded))["total"]
    if method in ("heads", "neurons", "layers"):
        assert after < before  # cut out of the weights, not masked
    if method == "layers":
        assert len(architecture_of(loaded).layers(loaded)) == 2
    if method == "qat":
        int8, tokenizer = load_model(tmp_path / "export" / "int8")
        float_logits = outputs(loaded, tokenizer)
        assert (outputs(int8, tokenizer) - float_logits).abs().max() < 0.05 + 0.1 * float_logits.abs().max()


def test_modernbert_refuses_to_remove_its_first_layer(family_teachers, tmp_path):
    with pytest.raises(DistillError, match="first layer has no attention norm"):
        fit(family_teachers["modernbert"], tmp_path, [LogitsKD()], [LayerPruning(layers=[1])], num_layers=3)


CROSSINGS = sorted({*((f, "bert") for f in FAMILIES), *(("bert", f) for f in ADAPTED)} - {("bert", "bert")})


@pytest.mark.parametrize(("teacher", "student"), matrix(CROSSINGS))
def test_a_teacher_distils_into_a_student_of_another_family(teacher, student, family_teachers, tmp_path):
    losses = [LogitsKD(weight=1.0), HiddenStatesKD(weight=1.0)]
    module = fit(family_teachers[teacher], tmp_path, losses, family=student, hidden_size=16, num_heads=2)
    loaded = exported_matches(module, tmp_path / "export")
    assert architecture_of(loaded).name == student
    words = module.teacher.model.get_input_embeddings().weight
    assert loaded.get_input_embeddings().weight.shape == (words.shape[0], 16)  # the teacher's vocabulary


def test_layers_are_copied_only_within_a_family(family_teachers, tmp_path):
    with pytest.raises(DistillError, match="must be of the teacher's family"):
        fit(family_teachers["bert"], tmp_path, [LogitsKD()], family="roberta", init_from_teacher=[0, 1])


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert"])
def test_init_from_teacher_copies_a_family_layer_for_layer(family, family_teachers, tmp_path):
    teacher = family_teachers[family]
    module = DistillationModule(
        task="sst2",
        teacher=str(teacher),
        student=EncoderStudent(num_layers=1, init_from_teacher=[1]),
        losses=[LogitsKD()],
    )
    adapter = architecture_of(module.teacher.model)
    mine = adapter.layers(module.student.model)[0].state_dict()
    theirs = adapter.layers(module.teacher.model)[1].state_dict()
    for name, value in mine.items():
        if name in theirs:
            torch.testing.assert_close(value, theirs[name])
    assert len(mine) >= len(theirs) - 1  # ModernBERT's first layer alone has no attention norm


def test_albert_is_refused_with_its_reason(family_teachers, tmp_path):
    from transformers import AlbertConfig, AlbertForSequenceClassification

    config = AlbertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, embedding_size=16)
    AlbertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(tmp_path)
    with pytest.raises(DistillError, match="'albert' model, which distill cannot read: ALBERT shares one set"):
        DistillationModule(task="sst2", teacher=str(tmp_path), student=EncoderStudent(), losses=[LogitsKD()])
    with pytest.raises(DistillError, match="encoder family 'albert' cannot be a student"):
        DistillationModule(
            task="sst2",
            teacher=str(family_teachers["bert"]),
            student=EncoderStudent(family="albert"),
            losses=[LogitsKD()],
        )


def test_a_deberta_v3_teacher_distils_into_bert_with_every_loss_from_the_yaml_that_failed(tmp_path):
    """Issue 32's failing case: the YAML as it was, a tiny DeBERTa-v3-style teacher with no segment embeddings."""
    from transformers import DebertaV2Config

    config = DebertaV2Config(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        type_vocab_size=0, position_biased_input=True, relative_attention=True, position_buckets=32,
        pos_att_type=["p2c", "c2p"],
    )  # fmt: skip
    teacher = save_teacher(config, tmp_path / "teacher")
    recipe = (Path(__file__).parent / "regressions" / "deberta_v3_teacher_into_bert.yaml").read_text()
    recipe = recipe.replace("TEACHER", str(teacher)).replace("SST2", str(SST2))
    recipe += f"  cache_dir: {tmp_path / 'cache'}\n"
    config_file = tmp_path / "deberta.yaml"
    config_file.write_text(recipe)
    run_cli("fit", "--config", str(config_file), "--trainer.default_root_dir", str(tmp_path), "--run_name", "run")
    student, _ = load_model(tmp_path / "run" / "student")
    assert architecture_of(student).name == "bert" and student.config.type_vocab_size == 1


def test_an_unknown_family_is_refused_at_set_up_with_the_supported_ones(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=100)).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(tmp_path)
    with pytest.raises(DistillError) as refused:
        DistillationModule(task="sst2", teacher=str(tmp_path), student=EncoderStudent(), losses=[LogitsKD()])
    message = str(refused.value)
    assert "'gpt2'" in message and "deberta-v2" in message and "distill_register_architectures" in message


@pytest.mark.parametrize("family", ["modernbert"])
def test_fit_predict_bench_and_onnx_work_for_a_family_without_segment_ids(family, family_teachers, tmp_path):
    """The CLI end to end on RTE pairs (which BERT reads with segment ids): report card, predict, ONNX."""
    config = base_config(family_teachers[family], tmp_path, data_dir=RTE, task="rte")
    settings = {"num_layers": 2, "init_from_teacher": [0, 1]}
    config["model"]["student"] = {"class_path": "EncoderStudent", "init_args": settings}
    run_cli("fit", "--config", str(write_config(tmp_path / "fit.yaml", config)), "--run_name", "f")
    report = json.loads((tmp_path / "f" / "report.json").read_text())
    assert [row["model"] for row in report["rows"]] == ["teacher", "student"]
    assert json.loads((tmp_path / "f" / "student" / "card.json").read_text())["student_family"] == family
    source = tmp_path / "in.tsv"
    source.write_text("sentence1\tsentence2\na cat sat on the mat .\ta cat sat .\nit rained .\tthe sun shone .\n")
    student = str(tmp_path / "f" / "student")
    run_cli("predict", "--model", student, "--input", str(source), "--output", str(tmp_path / "o.tsv"))
    assert len((tmp_path / "o.tsv").read_text().splitlines()) == 3
    run_cli("export", "--model", student, "--onnx", "true")
    assert (tmp_path / "f" / "student" / "onnx" / "model.onnx").is_file()


def test_family_settings_reach_the_students_config_and_typos_are_refused(family_teachers):
    def build(settings: dict):
        student = EncoderStudent(family="deberta-v2", num_layers=1, config=settings)
        return DistillationModule(
            task="sst2", teacher=str(family_teachers["bert"]), student=student, losses=[LogitsKD()]
        )

    module = build({"position_buckets": 16})
    assert module.student.model.base_model.encoder.rel_embeddings.num_embeddings == 32
    with pytest.raises(DistillError, match=r"\['bukets'\] are not settings of the deberta-v2 family"):
        build({"bukets": 16})
