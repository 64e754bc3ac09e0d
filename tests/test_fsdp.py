"""FSDP with a frozen teacher: the teacher is never sharded for gradients, stays whole on every rank and untouched,
and the student's sharded state exports whole.

Lightning and torch run FSDP on accelerators only ("FSDP needs a non-CPU accelerator device"), so the full run
is the GPU test below (benchmarks/gpu.sh runs it on a borrowed GPU). On CPU, the refusal is one line and the
teacher's exclusion is checked on the strategy the module configures.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import seed_everything
from lightning.pytorch.strategies import FSDPStrategy

from distill.after_fit import export_checkpoint
from distill.delivery.loading import load_model
from tests.conftest import base_config, cli_error, write_config
from tests.test_module import make_data, make_module, quiet_trainer


def test_fsdp_on_cpu_is_refused_in_one_line(tiny_teacher, tmp_path):
    config = write_config(tmp_path / "c.yaml", base_config(tiny_teacher, tmp_path))
    message = cli_error("fit", "--config", str(config), "--trainer.strategy", "fsdp", "--trainer.accelerator", "cpu")
    assert message.startswith("distill: error: trainer settings:") and "GPU" in message and "\n" not in message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_teacher_joins_fsdps_ignored_modules_once(tiny_teacher):
    module = make_module(tiny_teacher)
    strategy = FSDPStrategy()
    module._trainer = SimpleNamespace(strategy=strategy, datamodule=None)
    module.configure_model()
    module.configure_model()  # Lightning may call it again (a resumed or second stage): still one entry
    assert strategy.kwargs["ignored_modules"] == [module.teacher]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP runs on accelerators only; benchmarks/gpu.sh runs it")
def test_fsdp_leaves_the_teacher_untouched_and_exports_the_student_whole(tiny_teacher, tmp_path):
    seed_everything(0)
    module = make_module(tiny_teacher)
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    student_names = {k: v.shape for k, v in module.student.model.state_dict().items()}
    trainer = quiet_trainer(tmp_path, accelerator="gpu", devices=1, strategy="fsdp", max_steps=4)
    trainer.fit(module, datamodule=make_data(module, tmp_path, rows=64))
    assert isinstance(trainer.strategy, FSDPStrategy)
    for name, value in module.teacher.state_dict().items():
        assert torch.equal(value.cpu(), teacher_before[name]), f"teacher weight {name} changed"
    checkpoint = tmp_path / "fsdp.ckpt"
    trainer.save_checkpoint(checkpoint)
    export_checkpoint(checkpoint, tmp_path / "student")
    exported, _ = load_model(tmp_path / "student")
    shapes = {k: v.shape for k, v in exported.state_dict().items()}
    assert all(shapes.get(f"model.{k}", shapes.get(k)) == shape for k, shape in student_names.items())
