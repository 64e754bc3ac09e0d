from __future__ import annotations

import copy

import pytest
import torch
from lightning.pytorch import Callback
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill import DistillError
from distill.compression import served_logits
from distill.delivery.bench import run_bench
from distill.delivery.loading import load_model
from distill.plugins.early_exit import EarlyExit, EarlyExitModel, ExitingExport, Ramp
from distill.registry import task_from_spec
from distill.sources import DataFiles
from distill.students.encoder import BertStudent
from distill.training.module import SELECTION
from tests.conftest import REFERENCE_TEACHER, SST2
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


@pytest.fixture(scope="module")
def exported(tiny_teacher, tmp_path_factory):
    root = tmp_path_factory.mktemp("early_exit")
    student = BertStudent(num_layers=3, init_from_teacher=[0, 1, 1])  # two ramps, so patience can act
    module, _ = compress(tiny_teacher, root, [EarlyExit(threshold=0.6)], student=student, steps=24)
    return export(module, root / "export"), module


def with_setting(model: EarlyExitModel, **settings) -> EarlyExitModel:
    variant = copy.copy(model)
    for name, value in settings.items():
        setattr(variant, name, value)
    variant.reset_exits()
    return variant


@pytest.fixture(scope="module")
def six_layers():
    """The reference teacher (6 real layers) with random ramps over [CLS] vectors centred by a fixed per-layer mean:
    rows then differ in confidence and in when consecutive ramps agree (each row is still computed alone)."""
    model = AutoModelForSequenceClassification.from_pretrained(REFERENCE_TEACHER).eval()
    tokenizer = AutoTokenizer.from_pretrained(REFERENCE_TEACHER)
    with torch.no_grad():
        states = model(**tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"), output_hidden_states=True)
        torch.manual_seed(0)
        ramps = torch.nn.ModuleList(Ramp(384, 2) for _ in range(5))
        for layer, ramp in enumerate(ramps, start=1):
            centre = states.hidden_states[layer][:, 0].mean(0)
            ramp.pooler.weight.normal_(0, 384**-0.5)
            ramp.pooler.bias.copy_(-ramp.pooler.weight @ centre)
            ramp.classifier.weight.normal_(0, 3.0)
            ramp.classifier.bias.zero_()
    return EarlyExitModel(model, ramps, "entropy", 0.0, 1).eval(), tokenizer


def first_ramp_entropies(model: EarlyExitModel, tokenizer) -> torch.Tensor:
    batch = dict(tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        first_layer = model.model(**batch, output_hidden_states=True).hidden_states[1]
        p = torch.softmax(model.ramps[0](first_layer, batch["attention_mask"]), -1)
    return -(p * p.log()).sum(-1)


def median_first_ramp_entropy(model: EarlyExitModel, tokenizer) -> float:
    ordered = first_ramp_entropies(model, tokenizer).sort().values
    middle = len(ordered) // 2
    return float(ordered[middle - 1] + ordered[middle]) / 2  # between two rows, so no row sits on the boundary


def mean_pooled(model: EarlyExitModel) -> EarlyExitModel:
    """The same model with its ramps reading the mean of the real tokens instead of [CLS]."""
    ramps = copy.deepcopy(model.ramps)
    for ramp in ramps:
        ramp.pooling = "mean"
    return EarlyExitModel(model.model, ramps, model.criterion, model.threshold, model.patience).eval()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("criterion", ["entropy", "patience"])
def test_a_batch_gives_the_same_predictions_as_its_rows_one_by_one(six_layers, criterion, pooling):
    base, tokenizer = six_layers
    base = mean_pooled(base) if pooling == "mean" else base
    if criterion == "entropy":
        model = with_setting(base, criterion=criterion, threshold=median_first_ramp_entropy(base, tokenizer))
    else:
        model = with_setting(base, criterion=criterion, patience=2)
    batched = logits(model, tokenizer, DEV_TEXTS)
    assert model.exits[:-1].sum() > 0 and (model.exits > 0).sum() >= 2  # rows left early, at different layers
    alone = torch.cat([logits(model, tokenizer, [text]) for text in DEV_TEXTS])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


def test_thresholds_bound_the_behaviour(exported):
    folder, module = exported
    model, tokenizer = load_model(folder)
    never = with_setting(model, threshold=0.0)
    plain = never.model  # the same weights without ramps
    torch.testing.assert_close(logits(never, tokenizer, DEV_TEXTS), logits(plain, tokenizer, DEV_TEXTS))
    assert never.exits.tolist() == [0, 0, len(DEV_TEXTS)]
    always = with_setting(model, threshold=10.0)
    logits(always, tokenizer, DEV_TEXTS)
    assert always.exits.tolist() == [len(DEV_TEXTS), 0, 0]


def test_report_section_and_bench_curve(exported, tiny_teacher, tmp_path):
    folder, _ = exported
    model, tokenizer = load_model(folder)
    logits(model, tokenizer, DEV_TEXTS)
    sections = ExitingExport.report_sections(model)
    assert sections and sections[0]["data"]["mean exit layer"] >= 1.0
    task = task_from_spec("sst2")
    examples = task.read(DataFiles(validation=str(SST2 / "dev.tsv")), "validation")
    rows = run_bench(str(tiny_teacher), [str(folder)], task, examples, tmp_path, ["ee"], latency_rows=16)
    names = [r["model"] for r in rows]
    assert names[:2] == ["teacher", "ee"] and sum("ee@threshold=" in n for n in names) == 8


def test_ramps_train_at_their_own_learning_rate(tiny_teacher, tmp_path):
    """Fresh ramps on a trained student get `ramp_learning_rate`; the student keeps the run's rate."""
    method = EarlyExit(ramp_learning_rate=1e-2)
    module, _ = compress(tiny_teacher, tmp_path, [method], steps=2, learning_rate=1e-5)
    ramp_ids = {id(p) for p in module.student.exit_ramps.parameters()}
    rates = {
        ("ramps" if id(p) in ramp_ids else "student"): group["initial_lr"]
        for group in module.trainer.optimizers[0].param_groups
        for p in group["params"]
    }
    assert rates == {"ramps": 1e-2, "student": 1e-5}


@pytest.mark.parametrize(
    ("criterion", "threshold"), [("entropy", 0.0), ("entropy", "median"), ("entropy", 10.0), ("patience", None)]
)
def test_validation_scores_what_the_export_serves(exported, criterion, threshold, monkeypatch):
    """The logits validation scores (and picks the best checkpoint on) are the exported early-exit model's."""
    folder, module = exported
    served, tokenizer = load_model(folder)
    if threshold == "median":  # half the rows leave at the first ramp
        threshold = median_first_ramp_entropy(served, tokenizer)
    (method,) = module.compression
    settings = {"criterion": criterion, "threshold": threshold or 0.0, "patience": 1}
    for name, value in settings.items():
        monkeypatch.setattr(method, name, value)
    batch = dict(tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        scored = served_logits(module.compression, module.student, batch)
    exiting = with_setting(served, **settings)
    torch.testing.assert_close(scored, logits(exiting, tokenizer, DEV_TEXTS), atol=1e-4, rtol=1e-4)
    full_depth = logits(module, tokenizer, DEV_TEXTS)
    left_early = (scored - full_depth).abs().amax(-1) > 1e-4
    assert exiting.exits[:-1].sum() == left_early.sum()
    if criterion == "entropy":  # answered by the first ramp: none, all, or those below the median (a real mix)
        # A briefly trained tiny ramp is near uniform: its rows' entropies differ by 1e-7, as much as the batched
        # and row-wise kernels do, so a row within 1e-6 of the threshold may go either way.
        entropies = first_ramp_entropies(served, tokenizer)
        fewest, most = (int((entropies < threshold + margin).sum()) for margin in (-1e-6, 1e-6))
        if threshold in (0.0, 10.0):
            fewest = most = {0.0: 0, 10.0: len(DEV_TEXTS)}[threshold]
        assert fewest <= exiting.exits[0] <= most
        assert threshold in (0.0, 10.0) or 0 < exiting.exits[0] < len(DEV_TEXTS)


def test_mean_pooled_ramps_reload_and_serve_what_validation_scored(tiny_teacher, tmp_path):
    """Ramps over the mean of the real tokens train, export with their pooling, and the reloaded model answers
    as validation scored: the padding of a batch never reaches a ramp."""
    method = EarlyExit(pooling="mean", threshold=0.6, settle=0.0)
    student = BertStudent(num_layers=3, init_from_teacher=[0, 1, 1])
    module, _ = compress(tiny_teacher, tmp_path, [method], student=student, steps=8)
    served, tokenizer = load_model(export(module, tmp_path / "export"))
    assert [ramp.pooling for ramp in served.ramps] == ["mean", "mean"]
    threshold = median_first_ramp_entropy(served, tokenizer)
    method.threshold = threshold
    batch = dict(tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        scored = served_logits(module.compression, module.student, batch)
    exiting = with_setting(served, threshold=threshold)
    torch.testing.assert_close(scored, logits(exiting, tokenizer, DEV_TEXTS), atol=1e-4, rtol=1e-4)
    assert 0 < exiting.exits[0] < len(DEV_TEXTS)  # the median threshold lets some rows, not all, leave first


def test_an_unknown_pooling_is_refused_by_name():
    with pytest.raises(DistillError, match="pooling must be 'cls' or 'mean', got 'max'"):
        EarlyExit(pooling="max")


class SelectionProbe(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        self.seen.append((trainer.global_step, float(metrics[SELECTION]), float(metrics["val/accuracy"])))


def test_no_checkpoint_is_kept_before_the_ramps_settle(tiny_teacher, tmp_path):
    """Before `settle`, the selection score rules every checkpoint out; after it, it is the served accuracy."""
    probe = SelectionProbe()
    compress(tiny_teacher, tmp_path, [EarlyExit(settle=0.5)], steps=8, callbacks=[probe], validate_every=2)
    assert [step for step, _, _ in probe.seen] == [2, 4, 6, 8]
    assert [selection for step, selection, _ in probe.seen if step < 4] == [float("-inf")]
    assert all(selection == accuracy for step, selection, accuracy in probe.seen if step >= 4)
