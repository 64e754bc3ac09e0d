"""Shared fixtures: tiny BERTs built from a config, real GLUE rows from ../shared, and a CLI runner."""

from __future__ import annotations

import os

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
os.environ["WANDB_MODE"] = "offline"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    PretrainedConfig,
)

from distill.training.data import TaskDataModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DISTILL_SHARED", ROOT.parent / "shared"))  # benchmarks/gpu_run.py lays out a copy
REFERENCE_TEACHER = SHARED / "teachers" / "minilm-l6-sst2"
SST2 = SHARED / "data" / "glue" / "SST-2"
RTE = SHARED / "data" / "glue" / "RTE"
CONLL = SHARED / "data" / "conll2003"


def tiny_bert_config(**overrides) -> BertConfig:
    """A two-layer BERT of width 32 over the real teacher's vocabulary."""
    settings = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
    )
    return BertConfig(**{**settings, **overrides})


def save_teacher(config: PretrainedConfig, directory: Path, seed: int = 0) -> Path:
    """A randomly initialised classifier of `config` saved like a fine-tuned teacher, with the real tokenizer."""
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(directory)
    return directory


def save_tiny_teacher(directory: Path, seed: int = 0, **overrides) -> Path:
    return save_teacher(tiny_bert_config(**overrides), directory, seed)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A randomly initialised two-layer BERT classifier (hidden 32, 4 heads) saved like a real teacher."""
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny_teacher"))


@pytest.fixture(scope="session")
def family_teachers(tmp_path_factory) -> dict[str, Path]:
    """A tiny random teacher of every built-in encoder family (tests/families.py)."""
    from tests.families import FAMILIES, save_family_teacher  # it builds on this module's save_teacher

    root = tmp_path_factory.mktemp("families")
    return {family: save_family_teacher(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_teacher_3_labels(tmp_path_factory) -> Path:
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny_teacher_3"), num_labels=3)


def base_config(teacher: Path, root: Path, data_dir: Path = SST2, task: str = "sst2") -> dict:
    """A complete, fast distillation config: tiny teacher, 2-layer student, a few hundred real rows."""
    return {
        "trainer": {
            "max_steps": 8,
            "val_check_interval": 4,
            "log_every_n_steps": 2,
            "default_root_dir": str(root),
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        "model": {
            "teacher": str(teacher),
            "student": {"class_path": "BertStudent", "init_args": {"num_layers": 1, "init_from_teacher": [1]}},
            "losses": [
                {"class_path": "HardLabelCE", "init_args": {"weight": 0.5}},
                {"class_path": "LogitsKD", "init_args": {"weight": 0.5, "temperature": 2.0}},
            ],
            "learning_rate": 1e-3,
        },
        "report": {"latency_rows": 16},
        "data": {
            "task": task,
            "data_dir": str(data_dir),
            "train_limit": 128,
            "eval_limit": 64,
            "batch_size": 16,
            "max_length": 64,
            "cache_dir": str(root / "cache"),
        },
    }


def small_data(teacher, cache_dir: Path, task: str = "sst2", folder: Path = SST2, **options) -> TaskDataModule:
    """A data module over 60 real training rows and 10 dev rows of a GLUE preset, set up for fitting."""
    data = TaskDataModule(
        task=task,
        data_dir=str(folder),
        tokenizer=teacher.tokenizer,
        teacher=teacher,
        train_limit=60,
        eval_limit=10,
        cache_dir=str(cache_dir),
        **options,
    )
    data.setup("fit")
    return data


def token_task_config(
    teacher: Path,
    root: Path,
    data: dict,
    student: dict | None = None,
    compression: list | None = None,
    hidden: bool = True,
    latency_rows: int = 16,
) -> Path:
    """A fast fit config for a token-level task (NER, QA) with the given data block, written to root/fit.yaml. The
    student defaults to one BERT layer copied from the teacher's second, trained on labels, logits KD and (with
    `hidden`) hidden-state KD."""
    losses = [
        {"class_path": "HardLabelCE", "init_args": {"weight": 0.5}},
        {"class_path": "LogitsKD", "init_args": {"weight": 0.5, "temperature": 2.0}},
        *([{"class_path": "HiddenStatesKD"}] if hidden else []),
    ]
    config = {
        "trainer": {"max_steps": 8, "val_check_interval": 4, "log_every_n_steps": 2, "default_root_dir": str(root),
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {
            "teacher": str(teacher),
            "student": student or {"class_path": "BertStudent",
                                   "init_args": {"num_layers": 1, "init_from_teacher": [1]}},
            "losses": losses,
            "compression": compression or [],
            "learning_rate": 1e-3,
        },
        "report": {"latency_rows": latency_rows},
        "data": {**data, "batch_size": 16, "cache_dir": str(root / "cache")},
    }  # fmt: skip
    return write_config(root / "fit.yaml", config)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*argv: str) -> None:
    """Run `distill ...` in this process (the CLI's real code path, without a subprocess's start-up cost)."""
    from distill.cli import main

    main(list(argv))


def cli_error(*argv: str) -> str:
    """Run a command that must fail; return its one-line error message."""
    with pytest.raises(SystemExit) as failure:
        run_cli(*argv)
    assert failure.value.code not in (0, None)
    return str(failure.value.code)


@pytest.fixture(scope="session")
def fitted_run(tiny_teacher, tmp_path_factory) -> Path:
    """One real `distill fit` through the CLI (runs/tiny, config tiny.yaml beside it), shared by many checks."""
    root = tmp_path_factory.mktemp("runs")
    config = write_config(root / "tiny.yaml", base_config(tiny_teacher, root))
    run_cli("fit", "--config", str(config), "--run_name", "tiny")
    return root / "tiny"


def tree(folder: Path) -> set[Path]:
    """Every path under `folder`: what a command that must write nothing is compared against."""
    return set(Path(folder).rglob("*"))
