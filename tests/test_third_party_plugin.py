"""A separately packaged plugin, pip-installed for real, is found through its entry point and used from YAML."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tests.conftest import ROOT, base_config, write_config

EXAMPLE = ROOT / "tests" / "example_plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """`pip install` of tests/example_plugin into its own folder, so the test environment stays untouched."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    return target


def distill(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **env}
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], capture_output=True, text=True, env=environment)


def test_installed_plugin_is_listed_with_its_names(site):
    listing = distill(site, "plugins")
    assert listing.returncode == 0, listing.stderr
    assert "example  (distill-example-plugin 0.1.0)" in listing.stdout
    assert "losses: CosineLogitsKD" in listing.stdout and "compression: FreezeEmbeddings" in listing.stdout
    assert "export_formats: EmbeddingNorms" in listing.stdout


def test_its_loss_and_method_work_by_name_from_yaml_and_change_the_run(site, tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["losses"].append({"class_path": "CosineLogitsKD", "init_args": {"weight": 0.3}})
    config["model"]["compression"] = [{"class_path": "FreezeEmbeddings"}]
    path = write_config(tmp_path / "with_plugin.yaml", config)
    result = distill(site, "fit", "--config", str(path), "--run_name", "plugin")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "plugin"
    with next(run.rglob("metrics.csv")).open() as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("train/cosine_logits")]
    assert logged and all(float(row["train/cosine_logits"]) >= 0 for row in logged)
    card = json.loads((run / "student" / "card.json").read_text())
    assert card["plugins"]["example"] == "distill-example-plugin 0.1.0"
    report = json.loads((run / "report.json").read_text())
    norms = next(s for s in report["sections"] if s["title"] == "Word-vector norms")  # the plugin's export format
    exported = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert norms["data"]["mean"] == pytest.approx(
        float(exported.bert.embeddings.word_embeddings.weight.norm(dim=-1).mean()), abs=1e-3
    )
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    torch.testing.assert_close(
        exported.bert.embeddings.word_embeddings.weight,  # frozen by the plugin
        teacher.bert.embeddings.word_embeddings.weight,
    )


def test_blocking_or_disabling_autoload_hides_it(site, tiny_teacher, tmp_path):
    for env in ({"DISTILL_BLOCK_PLUGINS": "example"}, {"DISTILL_DISABLE_PLUGIN_AUTOLOAD": "1"}):
        listing = distill(site, "plugins", **env)
        assert "example" not in listing.stdout and "losses: LogitsKD" in listing.stdout
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["losses"] = [{"class_path": "CosineLogitsKD"}]
    result = distill(
        site, "fit", "--config", str(write_config(tmp_path / "c.yaml", config)), DISTILL_BLOCK_PLUGINS="example"
    )
    assert result.returncode != 0 and "unknown loss 'CosineLogitsKD'" in result.stderr
    # Blocking acts on entry points only: a full import path still imports the class directly.
    config["model"]["losses"] = [{"class_path": "distill_example_plugin.CosineLogitsKD"}]
    resolved = distill(
        site,
        "fit",
        "--config",
        str(write_config(tmp_path / "full.yaml", config)),
        "--print_config",
        DISTILL_BLOCK_PLUGINS="example",
    )
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    assert "class_path: distill_example_plugin.CosineLogitsKD" in resolved.stdout
