"""Data-parallel training on CPU (gloo): 2 processes, and 2 "nodes" launched by torchrun on this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, base_config, write_config


def config_for(teacher: Path, root: Path, **trainer) -> Path:
    config = base_config(teacher, root)
    config["trainer"].update(max_steps=8, val_check_interval=4, accelerator="cpu", **trainer)
    config["model"]["student"]["init_args"]["dropout"] = 0.0  # dropout masks differ by rank; the maths must not
    config["model"]["teacher_cache"] = {"directory": str(root / "teacher_cache")}
    return write_config(root / "c.yaml", config)


def distill(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    command = [*(launcher or [sys.executable]), "-m", "distill.cli", *args]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


def summary(run: Path) -> tuple[float, int]:
    card = json.loads((run / "student" / "card.json").read_text())
    return card["dev_metrics"]["accuracy"], card["training"]["optimizer_steps"]


@pytest.fixture(scope="module")
def single(tiny_teacher, tmp_path_factory) -> tuple[float, int]:
    root = tmp_path_factory.mktemp("single")
    finished(
        distill(
            "fit",
            "--config",
            str(config_for(tiny_teacher, root, devices=1)),
            "--run_name",
            "run",
            "--data.batch_size",
            "32",
        )
    )
    return summary(root / "run")


def test_two_processes_match_one_process(tiny_teacher, tmp_path, single):
    config = config_for(tiny_teacher, tmp_path, devices=2, strategy="ddp")
    finished(distill("fit", "--config", str(config), "--run_name", "ddp", "--data.batch_size", "16"))
    accuracy, steps = summary(tmp_path / "ddp")
    assert steps == single[1] == 8  # the same optimizer steps: two ranks of 16 are one batch of 32
    assert abs(accuracy - single[0]) <= 1 / 64  # 64 dev rows; float reduction order may move one at most
    assert (tmp_path / "ddp" / "report.json").is_file()  # rank 0 exported and reported, once
    cache = next((tmp_path / "teacher_cache").iterdir())
    assert (torch.from_numpy(__import__("numpy").load(cache / "filled.npy"))).all()  # both ranks filled rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_launched_by_torchrun(tiny_teacher, tmp_path, single):
    config = config_for(tiny_teacher, tmp_path, devices=1, num_nodes=2, strategy="ddp")
    port = str(free_port())
    nodes = [
        distill(
            "fit",
            "--config",
            str(config),
            "--run_name",
            "nodes",
            "--data.batch_size",
            "16",
            launcher=[
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node_rank",
                str(rank),
                "--nproc_per_node",
                "1",
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                port,
            ],
        )
        for rank in (0, 1)
    ]
    for node in nodes:
        finished(node)
    accuracy, steps = summary(tmp_path / "nodes")
    assert steps == single[1] and abs(accuracy - single[0]) <= 1 / 64
