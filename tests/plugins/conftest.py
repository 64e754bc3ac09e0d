"""Helpers for compression tests: a tiny two-layer student trained with methods, and its export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from distill.compression import finalize
from distill.delivery.export import export_student
from distill.plugins.losses import HardLabelCE, LogitsKD
from distill.students.encoder import BertStudent
from distill.training.data import TaskDataModule
from distill.training.module import DistillationModule
from tests.conftest import SST2

DEV_TEXTS = [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:33]]


def compress(
    teacher_dir: Path,
    tmp_path: Path,
    compression: list,
    steps: int = 16,
    callbacks: list[Callback] = (),
    validate_every: int | None = None,
    module: DistillationModule | None = None,
    **module_args,
) -> tuple[DistillationModule, TaskDataModule]:
    """Train a tiny student with `compression` for `steps` steps (or train the given `module`); validate every
    `validate_every` steps if given."""
    seed_everything(0)
    settings = dict(
        task="sst2",
        student=BertStudent(num_layers=2, init_from_teacher=[0, 1]),
        losses=[HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=2.0)],
        teacher=str(teacher_dir),
        learning_rate=1e-3,
        compression=compression,
    )
    module = module or DistillationModule(**{**settings, **module_args})
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=module.tokenizer,
        train_limit=128,
        eval_limit=32,
        batch_size=16,
        max_length=64,
        cache_dir=str(tmp_path / "tokens"),
    )
    trainer = Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0 if validate_every is None else 1.0,
        val_check_interval=validate_every,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=data)
    return module.eval(), data


@pytest.fixture(scope="session")
def plain_export(tiny_teacher, tmp_path_factory) -> Path:
    """The default tiny student exported without any method: what a method's export is compared with."""
    root = tmp_path_factory.mktemp("plain")
    module, _ = compress(tiny_teacher, root, [], steps=1)
    return export(module, root / "export")


def export(module: DistillationModule, folder: Path) -> Path:
    """What `distill fit` does after training: make the methods permanent, then save."""
    finalize(module.compression, module.student)
    export_student(module.student, module.tokenizer, folder, {}, module.compression)
    return folder


def logits(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Logits of a loaded export, or of a module's student (with the teacher's tokenizer)."""
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        if isinstance(model, DistillationModule):
            return model.student(batch, frozenset({"logits"})).logits
        output = model(**batch)
    return output.logits if hasattr(output, "logits") else output
