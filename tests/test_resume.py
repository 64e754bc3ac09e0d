"""A real `distill fit` killed mid-epoch and resumed with --ckpt_path ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, base_config, cli_error, run_cli, write_config


def test_a_killed_run_resumes_to_the_same_student(tiny_teacher, tmp_path, capsys):
    config = base_config(tiny_teacher, tmp_path)
    config["trainer"].update(max_steps=40, val_check_interval=8)  # 8 batches an epoch: step 13 is mid-epoch
    preempt = {"filename": "preempt-{step}", "every_n_train_steps": 13, "save_top_k": -1}  # saved in the run folder
    config["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": preempt}
    ]
    config["model"]["compression"] = [
        {"class_path": "MagnitudePruning", "init_args": {"sparsity": 0.3, "end": 0.5, "every": 2}}
    ]
    path = write_config(tmp_path / "c.yaml", config)

    run_cli("fit", "--config", str(path), "--run_name", "whole")

    command = [sys.executable, "-m", "distill.cli", "fit", "--config", str(path), "--run_name", "cut"]
    process = subprocess.Popen(
        command, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not list((tmp_path / "cut").rglob("preempt-step=13.ckpt")) and process.poll() is None:
        assert time.monotonic() < deadline, "no mid-run checkpoint appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "cut" / "student").exists()  # killed before it could export

    (checkpoint,) = (tmp_path / "cut").rglob("preempt-step=13.ckpt")
    stale = tmp_path / "cut" / "checkpoints" / "best-step=999.ckpt"  # a best the killed process saved later
    stale.write_bytes((tmp_path / "cut" / "checkpoints" / "last.ckpt").read_bytes())
    capsys.readouterr()
    run_cli("fit", "--config", str(path), "--ckpt_path", str(checkpoint))
    logs = tmp_path / "cut" / "lightning_logs"
    assert f"resumed: metrics from here on are logged in {logs / 'version_1'}" in capsys.readouterr().err
    assert (logs / "version_1" / "metrics.csv").is_file()

    whole, cut = (json.loads((tmp_path / name / "student" / "card.json").read_text()) for name in ("whole", "cut"))
    assert cut["dev_metrics"] == whole["dev_metrics"]
    assert cut["training"]["optimizer_steps"] == whole["training"]["optimizer_steps"] == 40
    expected, got = (load_file(tmp_path / name / "student" / "model.safetensors") for name in ("whole", "cut"))
    assert expected.keys() == got.keys()
    assert all((expected[k] == got[k]).all() for k in expected)  # the same student, bit for bit
    (best,) = (tmp_path / "cut" / "checkpoints").glob("best-step=*.ckpt")  # no stale best beside the new one
    assert str(best) == cut["checkpoint"]


def _final_weights(run) -> dict:
    """The weights after the last step (the export is the best checkpoint, which a new folder selects afresh)."""
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 24  # last.ckpt is the latest validation's, not the best's copy
    return last["state_dict"]


def test_a_checkpoint_saved_on_a_validation_step_resumes_bit_exactly(tiny_teacher, tmp_path, capsys):
    """every_n_train_steps saves before that step's validation runs; the resumed run must not drift for it."""
    config = base_config(tiny_teacher, tmp_path)
    config["trainer"].update(max_steps=24, val_check_interval=8)  # 8 batches an epoch
    config["data"]["eval_limit"] = 16
    periodic = {"filename": "periodic-{step}", "every_n_train_steps": 4, "save_top_k": -1}
    config["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": periodic}
    ]
    path = write_config(tmp_path / "c.yaml", config)
    run_cli("fit", "--config", str(path), "--run_name", "whole")
    expected = _final_weights(tmp_path / "whole")
    for step in (8, 12):  # on a validation step, and between validations
        (checkpoint,) = (tmp_path / "whole").rglob(f"periodic-step={step}.ckpt")
        run_cli("fit", "--config", str(path), "--ckpt_path", str(checkpoint), "--run_name", f"from_{step}")
        got = _final_weights(tmp_path / f"from_{step}")
        assert all((expected[k] == got[k]).all() for k in expected), f"resumed from step {step}, the weights drifted"
    assert "in a new run folder" in capsys.readouterr().err  # whole/ has exported, so it is never written over


def test_the_best_checkpoint_holds_weights_only_and_is_refused_for_resuming(fitted_run):
    (best,) = (fitted_run / "checkpoints").glob("best-step=*.ckpt")
    last = fitted_run / "checkpoints" / "last.ckpt"
    assert "optimizer_states" not in torch.load(best, weights_only=True, mmap=True)
    assert "optimizer_states" in torch.load(last, weights_only=True, mmap=True)
    assert best.stat().st_size < last.stat().st_size / 2  # AdamW keeps two moments per weight
    config = fitted_run.parent / "tiny.yaml"
    message = cli_error("fit", "--config", str(config), "--ckpt_path", str(best), "--run_name", "again")
    assert "weights only" in message and "last.ckpt" in message
    assert not (fitted_run.parent / "again").exists()
