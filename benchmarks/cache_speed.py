"""Teacher-output cache: logits-only KD epoch times with and without the cache, on the same batches.

    python benchmarks/cache_speed.py [--rows 8000] [--epochs 2]

For each student (the 4-layer, 192-wide student of bert_l4_h192.yaml and the 3-layer student of bert_l3.yaml),
two runs train on the same SST-2 rows in the same order: one runs the teacher every step, the other caches its
logits in the first epoch and reads them afterwards. Reports each epoch's time, the speedup of the epochs after
the first, and the largest difference between the two runs' per-step losses. Writes
benchmarks/results/cache_speed.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from distill.plugins.losses import HardLabelCE, LogitsKD
from distill.students.encoder import BertStudent
from distill.training.cache import TeacherCache
from distill.training.data import TaskDataModule
from distill.training.module import DistillationModule

HERE = Path(__file__).resolve().parent
TEACHER = HERE.parent.parent / "shared" / "teachers" / "minilm-l6-sst2"
SST2 = HERE.parent.parent / "shared" / "data" / "glue" / "SST-2"
STUDENTS = {
    "bert_l4_h192": BertStudent(
        num_layers=4, hidden_size=192, num_heads=6, intermediate_size=768, init_embeddings="teacher"
    ),
    "bert_l3": BertStudent(num_layers=3, init_from_teacher=[0, 2, 4]),
}


class EpochClock(Callback):
    """Seconds per training epoch (validation is off) and the loss of every step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def run(student: BertStudent, rows: int, epochs: int, cache: Path | None) -> EpochClock:
    seed_everything(0)
    module = DistillationModule(
        task="sst2",
        student=student,
        losses=[HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=2.0)],
        teacher=str(TEACHER),
        learning_rate=2e-4,
        teacher_cache=TeacherCache(directory=str(cache)) if cache else None,
    )
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=module.tokenizer,
        train_limit=rows,
        eval_limit=32,
        batch_size=32,
        max_length=66,
    )
    clock = EpochClock()
    trainer = Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(module, datamodule=data)
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    results = {}
    for name, student in STUDENTS.items():
        with tempfile.TemporaryDirectory() as scratch:
            live = run(student, args.rows, args.epochs, cache=None)
            cached = run(student, args.rows, args.epochs, cache=Path(scratch))
        later_live, later_cached = sum(live.seconds[1:]), sum(cached.seconds[1:])
        results[name] = {
            "epoch_seconds_without_cache": [round(s, 1) for s in live.seconds],
            "epoch_seconds_with_cache": [round(s, 1) for s in cached.seconds],
            "speedup_after_first_epoch": later_live / later_cached,
            "steps_compared": len(live.losses),
            "max_loss_difference": max(abs(a - b) for a, b in zip(live.losses, cached.losses, strict=True)),
        }
        print(name, json.dumps(results[name], indent=1))
    record = {
        "date": date.today().isoformat(),
        "rows": args.rows,
        "epochs": args.epochs,
        "batch_size": 32,
        "threads": torch.get_num_threads(),
        "command": shlex.join(["python", "benchmarks/cache_speed.py", *sys.argv[1:]]),
        "results": results,
    }
    (HERE / "results" / "cache_speed.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
