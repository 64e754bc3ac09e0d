"""A run logged to wandb offline (no API key): its records are read back from the offline run's files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from wandb.proto.wandb_internal_pb2 import Record

from tests.conftest import base_config, run_cli, write_config

BLOCK, HEADER = 32768, 7  # wandb's run file: a ":W&B" header, then a LevelDB-style log of protobuf records


def records(path: Path) -> Iterator[Record]:
    data, position, pending = path.read_bytes(), HEADER, b""
    while position + 7 <= len(data):
        if BLOCK - position % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            position += BLOCK - position % BLOCK
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_an_offline_wandb_run_holds_config_losses_schedules_metrics_and_the_report(tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {"project": "distill-test", "save_dir": str(tmp_path)},
    }
    config["trainer"]["log_every_n_steps"] = 1
    config["model"]["losses"][1]["init_args"]["temperature_schedule"] = {"start": 4.0, "end": 1.0}
    run_cli("fit", "--config", str(write_config(tmp_path / "c.yaml", config)), "--run_name", "logged")
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    config_keys, history_keys = set(), set()
    for record in records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config_keys |= {item.key for item in record.config.update}
        elif kind == "history":
            history_keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    assert {"config", "plugins"} <= config_keys
    assert {
        "train/loss",
        "train/hard_labels",
        "train/logits",
        "schedule/logits_temperature",
        "val/accuracy",
        "report/speedup_batch1",
        "report/drop_points",
    } <= history_keys
    (table,) = run_file.parent.glob("files/media/table/report/card_*.table.json")
    assert [row[0] for row in json.loads(table.read_text())["data"]] == ["teacher", "student"]
    assert list(run_file.parent.glob("files/media/images/report/pareto_*.png"))
