from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from distill.errors import DistillError
from distill.loss import LossTerm
from distill.plugins.losses import HardLabelCE, HiddenStatesKD, LogitsKD
from distill.students.encoder import BertStudent
from distill.training.data import TaskDataModule
from distill.training.module import SELECTION, DistillationModule
from tests.conftest import SST2


def make_module(teacher_dir, **kwargs) -> DistillationModule:
    settings = dict(
        task="sst2",
        student=BertStudent(num_layers=1, init_from_teacher=[0]),
        losses=[HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=2.0)],
        teacher=str(teacher_dir),
        learning_rate=1e-3,
    )
    return DistillationModule(**{**settings, **kwargs})


def make_data(module: DistillationModule, tmp_path, rows: int = 256) -> TaskDataModule:
    return TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=module.tokenizer,
        train_limit=rows,
        eval_limit=64,
        batch_size=32,
        max_length=64,
        cache_dir=str(tmp_path),
    )


def quiet_trainer(tmp_path, **settings) -> Trainer:
    """A Trainer that writes nothing but what a test asks for: no logger, checkpoints, bars or summary."""
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return Trainer(default_root_dir=tmp_path, **{**quiet, **settings})


class TeacherWatch(Callback):
    """Records, at every training step, whether any teacher module is training or has a gradient."""

    def __init__(self) -> None:
        self.teacher_training, self.teacher_grads = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.teacher_training.append(any(m.training for m in module.teacher.modules()))
        self.teacher_grads.append(any(p.grad is not None for p in module.teacher.parameters()))


def test_training_lowers_the_objective_and_leaves_the_teacher_frozen(tiny_teacher, tmp_path):
    seed_everything(0)
    module = make_module(tiny_teacher)
    data = make_data(module, tmp_path)
    data.setup("fit")
    probe = next(iter(data.train_dataloader()))
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}

    def objective() -> float:
        module.eval()
        with torch.no_grad():
            return module.objective(*module.features(probe), probe)[0].item()

    before = objective()
    watch = TeacherWatch()
    trainer = quiet_trainer(tmp_path, max_epochs=10, callbacks=[watch], limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    assert objective() < 0.95 * before
    assert not any(watch.teacher_training) and not any(watch.teacher_grads)
    for name, value in module.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[name])
    assert all(not p.requires_grad for p in module.teacher.parameters())


def test_optimizer_holds_only_student_and_loss_parameters(tiny_teacher, tmp_path):
    module = make_module(tiny_teacher)
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=make_data(module, tmp_path, rows=32))
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in module.student.parameters()}
    assert not optimised & {id(p) for p in module.teacher.parameters()}


def test_teacher_is_asked_only_for_what_losses_read(tiny_teacher):
    assert make_module(tiny_teacher).teacher_needs == {"logits"}
    assert make_module(tiny_teacher, losses=[HardLabelCE()]).teacher_needs == frozenset()


def test_setup_refuses_mismatches_with_one_message(tiny_teacher, tiny_teacher_3_labels):
    with pytest.raises(DistillError, match=r"predicts 3 label\(s\) .*, but task sst2 has 2"):
        make_module(tiny_teacher_3_labels)
    with pytest.raises(DistillError, match="reads the teacher's \\['logits'\\]: set model.teacher"):
        make_module(tiny_teacher, teacher=None, student=BertStudent(), losses=[LogitsKD()])
    with pytest.raises(DistillError, match="model.losses is empty"):
        make_module(tiny_teacher, losses=[])
    with pytest.raises(DistillError, match="unknown lr_schedule 'triangle'"):
        make_module(tiny_teacher, lr_schedule="triangle")


class UnnamedLoss(LossTerm):
    """A plugin loss that forgot to set `name`."""

    def forward(self, student, teacher, batch):
        return student.logits.sum() * 0


class NaNAfter(LossTerm):
    """Finite for the first `calls` training steps, NaN after: a run gone wrong, on cue."""

    name = "nan_after"

    def __init__(self, calls: int = 0, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        self.calls, self.seen = calls, 0

    def forward(self, student, teacher, batch):
        self.seen += 1
        return student.logits.sum() * (float("nan") if self.seen > self.calls else 0.0)


class OtherLogits(LossTerm):
    name = "logits"

    def forward(self, student, teacher, batch):
        return student.logits.sum() * 0


def test_loss_names_must_not_collide(tiny_teacher):
    with pytest.raises(DistillError, match="named 'loss', the name the total objective is logged as"):
        make_module(tiny_teacher, losses=[HardLabelCE(), UnnamedLoss()])
    with pytest.raises(DistillError, match="LogitsKD and OtherLogits are both named 'logits'"):
        make_module(tiny_teacher, losses=[LogitsKD(), OtherLogits()])
    twice = make_module(tiny_teacher, losses=[LogitsKD(), LogitsKD(temperature=4.0)])
    assert twice.log_names == ["logits", "logits_2"]  # the same kind twice is numbered, not refused


class FastProjection(LossTerm):
    """A term with a trainable part that asks for its own learning rate."""

    name = "fast_projection"

    def setup(self, student, teacher):
        self.projection = torch.nn.Linear(2, 2)

    def learning_rates(self):
        return {"projection": 0.5}

    def forward(self, student, teacher, batch):
        return self.projection(student.logits).pow(2).mean()


def test_a_loss_term_gives_its_own_parts_their_learning_rate(tiny_teacher, tmp_path):
    module = make_module(tiny_teacher, losses=[HardLabelCE(), FastProjection()])
    trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(module, datamodule=make_data(module, tmp_path, rows=32))
    rates = {id(p): group["initial_lr"] for group in trainer.optimizers[0].param_groups for p in group["params"]}
    projection = module.losses[1].projection
    assert {rates[id(p)] for p in projection.parameters()} == {0.5}
    assert rates[id(next(module.student.parameters()))] == 1e-3


class DevObjectiveProbe(Callback):
    """Records the selection score and the dev objective at each validation."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def on_validation_end(self, trainer, module) -> None:
        metrics = trainer.callback_metrics
        self.seen.append((float(metrics[SELECTION]), float(metrics["val/objective"])))


def test_a_stage_that_trains_no_predictions_is_selected_on_its_dev_objective(tiny_teacher, tmp_path):
    """Task-agnostic distillation matches inner features only, so the untrained head's accuracy cannot pick the
    checkpoint: the selection score is the negated objective over dev, and it falls as the stage trains."""
    seed_everything(0)
    module = make_module(tiny_teacher, student=BertStudent(num_layers=1), losses=[HiddenStatesKD(layers="uniform")])
    assert not module.trains_predictions and make_module(tiny_teacher).trains_predictions
    probe = DevObjectiveProbe()
    trainer = quiet_trainer(tmp_path, max_steps=16, val_check_interval=4, num_sanity_val_steps=0, callbacks=[probe])
    trainer.fit(module, datamodule=make_data(module, tmp_path, rows=128))
    assert len(probe.seen) == 4
    assert all(selection == -objective for selection, objective in probe.seen)
    assert probe.seen[-1][1] < probe.seen[0][1]
