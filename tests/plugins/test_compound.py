"""Methods compound in one run, in stage order, and the run resumes from a mid-run checkpoint exactly."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from distill.compression import Compression, Stage, finalize, ordered
from distill.plugins.early_exit import EarlyExit
from distill.plugins.losses import AttentionKD, HardLabelCE, HiddenStatesKD, LogitsKD
from distill.plugins.pruning import HeadPruning, MagnitudePruning
from distill.plugins.quantization import QuantizationAwareTraining
from distill.students.encoder import BertStudent
from distill.training.data import TaskDataModule
from distill.training.module import DistillationModule
from tests.conftest import SST2


def compound_run(teacher, root, steps, save_every=None, resume_from=None):
    seed_everything(0)
    module = DistillationModule(
        task="sst2",
        student=BertStudent(num_layers=2, init_from_teacher=[0, 1]),
        losses=[HardLabelCE(weight=0.5), LogitsKD(weight=0.5), HiddenStatesKD(), AttentionKD(kind="mse")],
        teacher=str(teacher),
        learning_rate=1e-3,
        compression=[
            EarlyExit(),
            QuantizationAwareTraining(),
            MagnitudePruning(sparsity=0.5, end=0.5, every=2),
            HeadPruning(fraction=0.25, at=0.25, batches=2),
        ],
    )
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=module.tokenizer,
        train_limit=96,
        eval_limit=16,
        batch_size=16,
        max_length=64,
        cache_dir=str(root / "tokens"),
    )
    saving = (
        [ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=save_every, save_top_k=-1, filename="{step}")]
        if save_every
        else []
    )
    trainer = Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
        callbacks=saving,
        enable_checkpointing=bool(saving),
    )
    trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=False)
    return module


def test_a_compound_run_with_intermediate_kd_completes_and_resumes_to_the_same_result(tiny_teacher, tmp_path):
    full = compound_run(tiny_teacher, tmp_path, steps=16, save_every=7)
    assert {term.name for term in full.losses} >= {"hidden_states", "attention", "exit_ramps"}
    resumed = compound_run(tiny_teacher, tmp_path, steps=16, resume_from=str(tmp_path / "ckpt" / "step=7.ckpt"))
    expected, got = full.student.state_dict(), resumed.student.state_dict()
    assert expected.keys() == got.keys() and any("head_gate" in k for k in got) and any("exit_ramps" in k for k in got)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


class Recorder(Compression):
    """A method that notes when its surgery hook runs."""

    def __init__(self, stage: Stage, log: list[str]) -> None:
        self.stage, self.log = stage, log

    def configure_student(self, student, teacher, data) -> None:
        self.log.append(self.stage.name)

    def finalize(self, student) -> None:
        self.log.append(self.stage.name)


def test_methods_compound_in_stage_order_and_unwind_in_reverse():
    log: list[str] = []
    stages = [Stage.EXITS, Stage.MASKS, Stage.STRUCTURE, Stage.FAKE_QUANT, Stage.MASKS]
    methods = [type(f"M{i}", (Recorder,), {})(stage, log) for i, stage in enumerate(stages)]
    for method in ordered(methods):  # as DistillationModule calls every lifecycle method
        method.configure_student(None, None, None)
    assert log == ["STRUCTURE", "MASKS", "MASKS", "FAKE_QUANT", "EXITS"]
    log.clear()
    finalize(methods, student=None)
    assert log == ["EXITS", "FAKE_QUANT", "MASKS", "MASKS", "STRUCTURE"]
