"""The smoke subset that CI also runs against the lowest and the newest dependency versions pyproject.toml allows
(.ci/dependency-range): fit -> export -> predict -> bench, on a tiny teacher and real SST-2 rows."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SST2, base_config, run_cli, write_config

pytestmark = pytest.mark.smoke


def test_fit_export_predict_and_bench(tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["report"]["enabled"] = False
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {"offline": True},
    }
    run_cli("fit", "--config", str(write_config(tmp_path / "smoke.yaml", config)), "--run_name", "smoke")
    assert (tmp_path / "smoke" / "wandb").is_dir()
    checkpoint = next((tmp_path / "smoke" / "checkpoints").glob("best-*.ckpt"))
    export = tmp_path / "export"
    run_cli("export", "--checkpoint", str(checkpoint), "--out", str(export), "--variants", "[DynamicQuantization]")
    predictions = tmp_path / "predictions.tsv"
    run_cli("predict", "--model", str(export / "int8"), "--task", "sst2", "--input", str(SST2 / "dev.tsv"),
            "--output", str(predictions))  # fmt: skip
    assert len(predictions.read_text().splitlines()) == len((SST2 / "dev.tsv").read_text().splitlines())
    bench, dev = tmp_path / "bench", tmp_path / "dev.tsv"
    dev.write_text("\n".join((SST2 / "dev.tsv").read_text().splitlines()[:65]) + "\n")  # the header and 64 rows
    run_cli("bench", str(export), str(export / "int8"), "--teacher", str(tiny_teacher), "--task", "sst2",
            "--validation", str(dev), "--out", str(bench), "--latency_rows", "16")  # fmt: skip
    rows = json.loads((bench / "bench.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["teacher", "export", "int8"]
