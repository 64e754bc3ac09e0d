from __future__ import annotations

import json

import matplotlib.image
import pytest
from transformers import AutoTokenizer, BertForSequenceClassification

from distill.delivery.measure import count_parameters
from tests.conftest import REFERENCE_TEACHER, SST2, cli_error, run_cli, tiny_bert_config


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    folders = []
    for layers in (1, 2):
        folder = tmp_path_factory.mktemp(f"student_l{layers}")
        BertForSequenceClassification(tiny_bert_config(num_hidden_layers=layers)).save_pretrained(folder)
        AutoTokenizer.from_pretrained(REFERENCE_TEACHER).save_pretrained(folder)
        folders.append(folder)
    return folders


def test_bench_writes_a_table_a_json_and_a_plot(tiny_teacher, students, tmp_path):
    run_cli(
        "bench",
        "--teacher",
        str(tiny_teacher),
        *map(str, students),
        "--names",
        "[one, two]",
        "--task",
        "sst2",
        "--data_dir",
        str(SST2),
        "--out",
        str(tmp_path),
        "--latency_rows",
        "40",
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["teacher", "one", "two"]
    table = [line for line in (tmp_path / "bench.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 2 * (1 + 3)  # Table 1 and the latency table, each a header and three rows
    expected = count_parameters(BertForSequenceClassification.from_pretrained(students[0]))
    assert result["rows"][1]["parameters"] == expected["total"]
    assert result["rows"][1]["parameters_without_embeddings"] == expected["without_embeddings"]
    assert result["latency_mix"]["examples"] == 40
    assert matplotlib.image.imread(tmp_path / "pareto.png").ndim == 3


def test_bench_refuses_mismatched_names_and_missing_folders(tiny_teacher, students, tmp_path):
    assert "one distinct name per student" in cli_error(
        "bench",
        "--teacher",
        str(tiny_teacher),
        *map(str, students),
        "--names",
        "[one]",
        "--task",
        "sst2",
        "--data_dir",
        str(SST2),
        "--out",
        str(tmp_path),
    )
    assert "does not exist" in cli_error("bench", "--teacher", str(tmp_path / "nope"), str(students[0]))


def test_bench_as_the_readme_writes_it_takes_task_and_data_from_the_card(tiny_teacher, fitted_run, tmp_path):
    run_cli(
        "bench",
        "--teacher",
        str(tiny_teacher),
        str(fitted_run / "student"),
        "--out",
        str(tmp_path),
        "--latency_rows",
        "16",
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["task"] == "sst2" and [r["model"] for r in result["rows"]] == ["teacher", "tiny"]


def test_bench_without_cards_asks_for_the_task(tiny_teacher, students, tmp_path):
    assert "pass --task: no student folder has a card.json" in cli_error(
        "bench", "--teacher", str(tiny_teacher), str(students[0]), "--out", str(tmp_path)
    )
    assert "could not load split 'validation' of hub dataset nyu-mll/glue (sst2)" in cli_error(
        "bench", "--teacher", str(tiny_teacher), str(students[0]), "--task", "sst2", "--out", str(tmp_path)
    )
