"""Issue 31 §2-§6: writes that could destroy a user's files, silently wrong results, and bad inputs that passed
silently or as tracebacks. Each test is named after its case; each bad input gets one line, a non-zero exit and
no run folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from distill import Compression, DataFiles, DistillError
from distill.atomic import atomic_directory, atomic_file
from distill.delivery import predict as predict_module
from distill.registry import task_from_spec
from distill.training.checkpoints import AtomicCheckpointIO
from tests.conftest import (
    REFERENCE_TEACHER,
    SST2,
    base_config,
    cli_error,
    run_cli,
    save_tiny_teacher,
    small_data,
    tree,
    write_config,
)


def one_line(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runs"


def fit_error(teacher: Path, root: Path, edit=None, *extra: str) -> str:
    """The one-line error of a fit that must be refused at set-up; it must leave no run folder behind."""
    config = base_config(teacher, root)
    if edit is not None:
        edit(config)
    path = write_config(root.parent / "bad.yaml", config)
    message = one_line(cli_error("fit", "--config", str(path), *extra))
    assert not root.exists() or not any(root.glob("bad-*")), list(root.iterdir())
    return message


def rows_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- §2 writes that can destroy the user's files ----------------------------------------------------------------


def test_predict_refuses_an_existing_output_and_always_the_input(fitted_run, tmp_path):
    rows = rows_file(tmp_path, "in.tsv", "sentence\na fine film\n")
    notes = rows_file(tmp_path, "notes.tsv", "my notes\n")
    model = str(fitted_run / "student")
    assert "already exists" in one_line(
        cli_error("predict", "--model", model, "--input", str(rows), "--output", str(notes))
    )
    assert notes.read_text() == "my notes\n"
    same = ["predict", "--model", model, "--input", str(rows), "--output", str(rows), "--overwrite", "true"]
    assert "is the input file" in one_line(cli_error(*same))
    run_cli("predict", "--model", model, "--input", str(rows), "--output", str(notes), "--overwrite", "true")
    assert notes.read_text().startswith("sentence\tprediction")


def test_bench_refuses_an_out_folder_holding_bench_files(fitted_run, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "bench.md").write_text("my bench notes")
    model = str(fitted_run / "student")
    message = one_line(cli_error("bench", model, "--teacher", model, "--out", str(out)))
    assert "bench.md already exists" in message and (out / "bench.md").read_text() == "my bench notes"


@pytest.mark.parametrize("name", ["../../escape", "/tmp/absolute-run", "a/b", ".."])
def test_run_name_that_is_a_path_is_refused(name, tiny_teacher, root):
    message = fit_error(tiny_teacher, root, None, "--run_name", name)
    assert "--run_name" in message and "not a folder name" in message
    assert not Path("/tmp/absolute-run").exists() and not (root.parent.parent / "escape").exists()


def test_a_failed_checkpoint_write_keeps_the_last_good_one(tmp_path, monkeypatch):
    last = tmp_path / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"step": 1}, last)

    def full_disk(obj, stream, *args, **kwargs):
        stream.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        writer.save_checkpoint({"step": 2}, last)
    monkeypatch.undo()
    assert torch.load(last, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no scratch left either


def test_an_output_folder_that_cannot_be_made_is_one_line(fitted_run, tmp_path):
    blocker = rows_file(tmp_path, "a-file", "not a folder\n")
    rows = rows_file(tmp_path, "in.tsv", "sentence\na fine film\n")
    message = cli_error(
        "predict", "--model", str(fitted_run / "student"), "--input", str(rows), "--output", str(blocker / "out.tsv")
    )
    assert "cannot create folder" in one_line(message)


def test_stale_scratch_of_a_killed_run_is_removed_and_nothing_else(tmp_path):
    dead = tmp_path / ".student.partial-999999999-abc"  # no such process
    alive = tmp_path / f".student.partial-{os.getppid()}-abc"  # a live process's work in progress
    users = tmp_path / ".student.partial-mine"
    for folder in (dead, alive, users):
        folder.mkdir()
    with atomic_directory(tmp_path / "student") as scratch:
        (scratch / "weights").write_text("w")
    assert not dead.exists() and alive.exists() and users.exists()
    assert (tmp_path / "student" / "weights").read_text() == "w"


def test_exported_files_follow_the_umask(fitted_run):
    expected = 0o666 & ~_umask()
    for path in (fitted_run / "student").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_export_checkpoint_whose_onnx_step_fails_leaves_no_folder(fitted_run, tmp_path):
    checkpoint = next((fitted_run / "checkpoints").glob("best-*.ckpt"))
    target = tmp_path / "exported"
    command = ["export", "--checkpoint", str(checkpoint), "--out", str(target), "--onnx", "true"]
    one_line(cli_error(*command, "--calibration", str(tmp_path / "missing.tsv")))
    assert not target.exists()
    run_cli(*command[:-2])  # the same command, without the broken step, is not refused
    assert (target / "card.json").is_file()


# --- §3 silently wrong results ----------------------------------------------------------------------------------


def test_resume_outside_its_run_folder_exports_this_runs_best(fitted_run, root):
    moved = root.parent / "moved.ckpt"
    root.mkdir(parents=True)
    shutil.copy(fitted_run / "checkpoints" / "last.ckpt", moved)
    config = fitted_run.parent / "tiny.yaml"
    run_cli("fit", "--config", str(config), "--ckpt_path", str(moved), "--trainer.max_steps", "12",
            "--trainer.default_root_dir", str(root), "--run_name", "resumed")  # fmt: skip
    card = json.loads((root / "resumed" / "student" / "card.json").read_text())
    assert Path(card["checkpoint"]).parent == root / "resumed" / "checkpoints"


def test_teacher_given_with_ckpt_path_that_differs_is_refused(fitted_run, tmp_path):
    config = fitted_run.parent / "tiny.yaml"
    last = fitted_run / "checkpoints" / "last.ckpt"
    command = ["fit", "--config", str(config), "--ckpt_path", str(last), "--model.teacher", str(tmp_path)]
    message = one_line(cli_error(*command))
    assert "model.teacher" in message and str(tmp_path) in message


def test_duplicate_column_names_are_refused(tiny_teacher, root, tmp_path):
    data = rows_file(tmp_path, "dup.csv", "sentence,sentence,label\nfine,bad,1\n")
    spec = {"class_path": "TextClassification", "init_args": {"text_columns": ["sentence"]}}

    def edit(config):
        config["data"].update(task=spec, files={"train": str(data), "validation": str(data)})
        del config["data"]["data_dir"]

    assert "['sentence'] more than once" in fit_error(tiny_teacher, root, edit)


def test_rows_longer_than_max_length_are_counted_in_the_notes(tiny_teacher, tmp_path):
    from distill.teacher import Teacher

    data = small_data(Teacher(str(tiny_teacher)), tmp_path, max_length=8)
    (note,) = [n for n in data.notes["train"] if "max_length" in n]
    assert note.startswith(f"{sum(len(ids) >= 8 for ids in data.splits['train']['input_ids'])} of 60 rows")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_predict_streams_in_chunks_and_writes_the_same_file(suffix, fitted_run, tmp_path, monkeypatch):
    command = ["predict", "--model", str(fitted_run / "student"), "--input", str(SST2 / "dev.tsv"), "--output"]
    run_cli(*command, str(tmp_path / f"whole{suffix}"))
    monkeypatch.setattr(predict_module, "CHUNK_ROWS", 128)  # two batches: the same batches as one chunk
    run_cli(*command, str(tmp_path / f"chunked{suffix}"))
    whole, chunked = (predict_module.load_table(tmp_path / f"{n}{suffix}", "--output") for n in ("whole", "chunked"))
    assert len(whole) == 872 and whole.to_dict() == chunked.to_dict()


# --- §4 bad inputs accepted silently ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_length", 0, "data.max_length must be at least 1"),
        ("max_length", 100000, "data.max_length 100000 is longer than the teacher reads (128 positions)"),
        ("batch_size", 0, "data.batch_size must be at least 1"),
        ("batch_size", -4, "data.batch_size must be at least 1"),
    ],
)
def test_data_setting_out_of_range_is_refused(key, value, expected, tiny_teacher, root):
    assert expected in fit_error(tiny_teacher, root, lambda c: c["data"].update({key: value}))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [((0.0, 0.0), "every weight is 0"), ((-1.0, 1.0), "negative weights"), ((1.0, -1.0), "negative weights")],
)
def test_loss_weights_that_train_nothing_are_refused(weights, expected, tiny_teacher, root):
    def edit(config):
        for term, weight in zip(config["model"]["losses"], weights, strict=True):
            term["init_args"]["weight"] = weight

    assert expected in fit_error(tiny_teacher, root, edit)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("warmup_ratio", 2, "warmup_ratio"), ("learning_rate", -1e-3, "model.learning_rate must be above 0")],
)
def test_model_setting_out_of_range_is_refused(key, value, expected, tiny_teacher, root):
    assert expected in fit_error(tiny_teacher, root, lambda c: c["model"].update({key: value}))


def test_negative_max_steps_is_refused(tiny_teacher, root):
    assert "trainer.max_steps must be -1" in fit_error(tiny_teacher, root, lambda c: c["trainer"].update(max_steps=-5))


def test_nul_bytes_empty_cells_and_a_single_label_are_noted(tiny_teacher, tmp_path):
    from distill.teacher import Teacher
    from distill.training.data import TaskDataModule

    rows = "sentence,label\n" + "".join(f"row {i},pos\n" for i in range(20)) + ",pos\nnul\0here,pos\n"
    data_file = rows_file(tmp_path, "rows.csv", rows)
    spec = {"class_path": "TextClassification", "init_args": {"text_columns": ["sentence"], "labels": ["neg", "pos"]}}
    data = TaskDataModule(
        task=task_from_spec(spec), files=DataFiles(train=str(data_file), validation=str(data_file)),
        tokenizer=Teacher(str(tiny_teacher)).tokenizer, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    data.setup("fit")
    notes = " | ".join(data.notes["train"])
    assert "1 rows have an empty 'sentence'" in notes and "1 rows hold NUL bytes" in notes
    assert "every labelled row has the label 'pos'" in notes


# --- §5 bad inputs that gave tracebacks -------------------------------------------------------------------------


def test_latin1_tsv_names_the_byte_and_line(fitted_run, tmp_path):
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("sentence\nfine\ncaf\xe9 au lait\n".encode("latin-1"))
    message = one_line(cli_error("predict", "--model", str(fitted_run / "student"), "--input", str(latin)))
    assert "is not UTF-8: byte 0xe9 at offset 17 (line 3)" in message and "iconv" in message


def test_teacher_whose_tokenizer_does_not_fit_its_weights_is_refused(root, tmp_path):
    teacher = save_tiny_teacher(tmp_path / "small_vocab", vocab_size=100)
    assert "30522 word pieces but its embedding table only 100 rows" in fit_error(teacher, root)


@pytest.mark.parametrize("kind", ["folder", "loop", "missing"])
def test_an_input_that_is_not_a_readable_file_says_what_it_is(kind, fitted_run, tmp_path):
    path = tmp_path / "input.tsv"
    if kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path)
    message = one_line(cli_error("predict", "--model", str(fitted_run / "student"), "--input", str(path)))
    expected = {"folder": "is a folder", "loop": "link loop", "missing": "does not exist"}[kind]
    assert expected in message


def test_a_byte_order_mark_is_not_part_of_the_first_column(fitted_run, tmp_path):
    rows = tmp_path / "bom.csv"
    rows.write_bytes("\ufeffsentence\na fine film\n".encode())
    out = tmp_path / "out.csv"
    run_cli("predict", "--model", str(fitted_run / "student"), "--input", str(rows), "--output", str(out))
    assert out.read_text().startswith("sentence,prediction")


def test_an_empty_json_file_has_no_rows(fitted_run, tmp_path):
    rows = rows_file(tmp_path, "empty.json", "[]")
    assert "has no rows" in one_line(cli_error("predict", "--model", str(fitted_run / "student"), "--input", str(rows)))


def test_a_yaml_tab_error_names_the_file(tiny_teacher, root, tmp_path):
    tabbed = rows_file(tmp_path, "tabbed.yaml", "trainer:\n\tmax_steps: 3\n")
    message = fit_error(tiny_teacher, root, None, "--config", str(tabbed))
    assert f"config {tabbed}, line 2, column 1: not valid YAML" in message and "tabs" in message


# --- §6 things that silently did nothing -----------------------------------------------------------------------


def test_a_plugin_with_the_earlier_hook_methods_is_refused_naming_the_new_one():
    with pytest.raises(DistillError, match="distill_configure_student.*rename it configure_student"):

        class Freeze(Compression):
            def distill_configure_student(self, student, teacher, data):
                pass


def test_pruning_that_cannot_finish_says_so_on_the_card(tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["compression"] = [{"class_path": "HeadPruning", "init_args": {"batches": 64}}]
    config["model"]["losses"].append({"class_path": "AttentionKD"})
    config["report"]["enabled"] = False
    run_cli("fit", "--config", str(write_config(tmp_path / "short.yaml", config)), "--run_name", "short")
    card = json.loads((tmp_path / "short" / "student" / "card.json").read_text())
    (note,) = card["compression_shortfalls"]
    assert note.startswith("HeadPruning: scored") and "nothing was pruned" in note


def test_loggers_write_under_the_run_folder(tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = base_config(tiny_teacher, tmp_path / "runs")
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {"offline": True},
    }
    config["report"]["enabled"] = False
    run_cli("fit", "--config", str(write_config(tmp_path / "w.yaml", config)), "--run_name", "w")
    assert {p.name for p in tmp_path.iterdir()} == {"runs", "w.yaml"}
    assert (tmp_path / "runs" / "w" / "wandb").is_dir()


def test_a_teacher_that_disagrees_with_the_gold_labels_is_flagged():
    task = task_from_spec("sst2")
    labels = torch.tensor([0, 1] * 32)
    reversed_teacher = torch.nn.functional.one_hot(1 - labels, 2).float()
    note = task.teacher_note(reversed_teacher, labels)
    assert note is not None and "0% of 64 dev rows" in note and "id2label" in note
    assert task.teacher_note(torch.nn.functional.one_hot(labels, 2).float(), labels) is None


def test_atomic_file_leaves_the_old_file_when_the_block_fails(tmp_path):
    path = rows_file(tmp_path, "kept.txt", "old")
    with pytest.raises(RuntimeError), atomic_file(path) as stream:
        stream.write(b"new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and tree(tmp_path) == {path}


def test_a_reversed_label_list_against_an_unnamed_teacher_is_flagged_before_training(tmp_path):
    """The reference teacher names its labels LABEL_0/1, so a reversed list is taken as given; its dev agreement
    with the gold labels then falls far below chance, which is said loudly and noted on the card."""
    config = base_config(REFERENCE_TEACHER, tmp_path)
    spec = {"class_path": "TextClassification", "init_args": {"text_columns": ["sentence"], "labels": ["1", "0"]}}
    files = {"train": str(SST2 / "train.tsv"), "validation": str(SST2 / "dev.tsv")}
    config["data"].update(task=spec, files=files, eval_limit=128, max_length=66)
    del config["data"]["data_dir"]
    config["trainer"].update(max_steps=2, val_check_interval=2)
    config["report"]["enabled"] = False
    with pytest.warns(UserWarning, match="agrees with the gold labels on only"):
        run_cli("fit", "--config", str(write_config(tmp_path / "reversed.yaml", config)), "--run_name", "reversed")
    card = json.loads((tmp_path / "reversed" / "student" / "card.json").read_text())
    assert any("far below chance" in note for note in card["data_notes"]["validation"])
