"""distill deletes only what it created in this invocation: a mistyped path never costs a user their files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distill.training.run_folder import MARKER, CreatedRunFolder, find_run_folder
from tests.conftest import ROOT, base_config, cli_error, tree, write_config


def _notes(parent: Path) -> Path:
    notes = parent / "notes2"
    notes.mkdir(parents=True)
    (notes / "important.txt").write_text("keep")
    return notes


def test_the_reported_data_loss_case_keeps_the_users_folder(monkeypatch, tmp_path):
    """The issue's reproduction, verbatim: a mistyped --ckpt_path plus a bad teacher."""
    monkeypatch.chdir(ROOT)
    notes = _notes(tmp_path)
    message = cli_error(
        "fit",
        "--config",
        "configs/sst2/bert_l3.yaml",
        "--ckpt_path",
        str(notes / "ckpts" / "last.ckpt"),
        "--model.teacher",
        "../shared/teachers/nope",
    )
    assert "--ckpt_path" in message and "no such file" in message
    assert (notes / "important.txt").read_text() == "keep"


@pytest.mark.parametrize("spelling", ["expanded", "tilde"])
def test_the_same_case_under_the_home_directory(monkeypatch, tmp_path, spelling):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(ROOT)
    notes = _notes(home)
    checkpoint = str(notes / "ckpts" / "last.ckpt") if spelling == "expanded" else "~/notes2/ckpts/last.ckpt"
    config = ["fit", "--config", "configs/sst2/bert_l3.yaml", "--ckpt_path", checkpoint]
    cli_error(*config, "--model.teacher", "../shared/teachers/nope")
    assert (notes / "important.txt").read_text() == "keep"
    assert sorted(p.name for p in home.iterdir()) == ["notes2"]


def test_a_real_checkpoint_in_a_users_folder_is_resumed_elsewhere_and_the_folder_kept(
    fitted_run, tiny_teacher, tmp_path
):
    """Past the checkpoint check, clean-up itself must still spare a folder distill did not create."""
    notes = _notes(tmp_path)
    (notes / "ckpts").mkdir()
    shutil.copy(fitted_run / "checkpoints" / "last.ckpt", notes / "ckpts" / "last.ckpt")
    root = tmp_path / "runs"
    config = write_config(tmp_path / "c.yaml", base_config(tiny_teacher, root))  # the checkpoint's own teacher
    before = tree(notes)
    resume = ["fit", "--config", str(config), "--ckpt_path", str(notes / "ckpts" / "last.ckpt")]
    message = cli_error(*resume, "--data.data_dir", str(tmp_path / "no_data"))
    assert "is not a folder" in message
    assert tree(notes) == before and (notes / "important.txt").read_text() == "keep"
    assert not root.exists()  # the run folder it made for the resume is gone, and runs/ with it


def test_discard_removes_only_a_folder_marked_by_this_invocation(tmp_path):
    mine = CreatedRunFolder.create(tmp_path / "runs" / "a")
    assert find_run_folder(mine.path / "checkpoints" / "x.ckpt") == mine.path
    (mine.path / MARKER).write_text('{"token": "another invocation"}')
    assert not mine.discard() and mine.path.is_dir()
    again = CreatedRunFolder.create(tmp_path / "runs" / "b")
    (again.path / "checkpoints").mkdir()
    (again.path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert not again.discard()  # a run that saved a checkpoint is kept
    fresh = CreatedRunFolder.create(tmp_path / "new" / "deeper" / "c")
    assert fresh.discard() and not (tmp_path / "new").exists()
    with pytest.raises(FileExistsError):
        CreatedRunFolder.create(tmp_path / "runs" / "a")


# --- checkpoints: missing, truncated or foreign ones give one line and write nothing ------------------------------


@pytest.fixture
def damaged(fitted_run, tmp_path) -> dict[str, Path]:
    whole = (fitted_run / "checkpoints" / "last.ckpt").read_bytes()
    truncated, garbage = tmp_path / "truncated.ckpt", tmp_path / "garbage.ckpt"
    truncated.write_bytes(whole[: len(whole) // 2])
    garbage.write_bytes(b"not a checkpoint at all")
    return {"missing": fitted_run / "checkpoints" / "nope.ckpt", "truncated": truncated, "garbage": garbage}


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage"])
def test_fit_validate_and_export_refuse_a_bad_checkpoint_and_write_nothing(fitted_run, damaged, kind):
    config = str(fitted_run.parent / "tiny.yaml")
    checkpoint = str(damaged[kind])
    before, beside = tree(fitted_run.parent), tree(damaged["garbage"].parent)
    expected = "no such file" if kind == "missing" else "truncated or corrupt"
    for command in (
        ["fit", "--config", config, "--ckpt_path", checkpoint],
        ["validate", "--config", config, "--ckpt_path", checkpoint],
        ["export", "--checkpoint", checkpoint, "--out", str(fitted_run.parent / "new_export")],
    ):
        message = cli_error(*command)
        assert expected in message and "Traceback" not in message and "\n" not in message
    assert tree(fitted_run.parent) == before and tree(damaged["garbage"].parent) == beside


def test_export_never_overwrites_a_folder(fitted_run, tmp_path):
    checkpoint = str(fitted_run / "checkpoints" / "last.ckpt")
    assert "already exists" in cli_error("export", "--checkpoint", checkpoint)  # the run's own student/
    outside = tmp_path / "elsewhere.ckpt"
    shutil.copy(checkpoint, outside)
    assert "pass --out" in cli_error("export", "--checkpoint", str(outside))
