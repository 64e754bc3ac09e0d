from __future__ import annotations

import json

import pytest
import torch

from distill.delivery.loading import load_model
from distill.plugins.losses import LogitsKD
from distill.registry import task_from_spec
from distill.students.nas_cnn import NAMES, ArchitectureCost, NasCnnSearch, NasCnnStudent
from distill.teacher import Teacher
from distill.training.module import DistillationModule
from tests.conftest import base_config, run_cli, write_config

SEARCH = {"embedding_dim": 16, "channels": 8, "cells": 2, "nodes": 2}


@pytest.fixture(scope="module")
def searched(tiny_teacher, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    config = base_config(tiny_teacher, root)
    config["model"]["student"] = {"class_path": "NasCnnSearch", "init_args": SEARCH}
    config["model"]["losses"] = [
        {"class_path": "LogitsKD"},
        {"class_path": "ArchitectureCost", "init_args": {"weight": 0.5}},
    ]
    config["model"]["learning_rate"] = 3e-3
    run_cli("fit", "--config", str(write_config(root / "search.yaml", config)), "--run_name", "search")
    return root / "search" / "genotype.json", config, root


def test_a_search_run_writes_a_genotype_of_known_operations_and_no_export(searched):
    path, _, root = searched
    assert not (root / "search" / "student").exists()  # the supernet is a means, not a model to serve
    genotype = json.loads(path.read_text())
    assert genotype["channels"] == 8 and len(genotype["cells"]) == 2
    for cell in genotype["cells"]:
        assert [edge["node"] for edge in cell] == [1, 2, 2]  # node 1 has one input, node 2 keeps its best two
        assert all(edge["op"] in NAMES and edge["op"] != "zero" and edge["from"] < edge["node"] for edge in cell)
    assert "accuracy" in genotype["dev_metrics"] and genotype["checkpoint"].endswith(".ckpt")


def test_the_derived_student_trains_exports_and_reloads(searched):
    path, config, root = searched
    config["model"]["student"] = {
        "class_path": "NasCnnStudent",
        "init_args": {"genotype": str(path), "embedding_dim": 16},
    }
    config["model"]["losses"] = [{"class_path": "HardLabelCE"}, {"class_path": "LogitsKD"}]
    run_cli("fit", "--config", str(write_config(root / "derived.yaml", config)), "--run_name", "derived")
    model, tokenizer = load_model(root / "derived" / "student")
    checkpoint = next((root / "derived" / "checkpoints").glob("best-*.ckpt"))
    module = DistillationModule.load_from_checkpoint(checkpoint).eval()
    batch = dict(tokenizer(["a fine film", "tedious"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(model(**batch), module.student(batch, frozenset({"logits"})).logits)


def test_the_efficiency_loss_pushes_the_architecture_to_cheaper_operations(tiny_teacher):
    torch.manual_seed(0)
    supernet = NasCnnSearch(**SEARCH).build(Teacher(str(tiny_teacher)), task_from_spec("sst2"))
    before = supernet.expected_cost().item()
    optimizer = torch.optim.Adam([supernet.alphas], lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        supernet.expected_cost().backward()
        optimizer.step()
    assert supernet.expected_cost().item() < 0.8 * before


def test_derivation_keeps_the_strongest_operations(tiny_teacher):
    supernet = NasCnnSearch(**SEARCH).build(Teacher(str(tiny_teacher)), task_from_spec("sst2"))
    with torch.no_grad():
        supernet.alphas.zero_()
        supernet.alphas[:, :, NAMES.index("zero")] = 9.0  # zero is never chosen
        supernet.alphas[:, 0, NAMES.index("conv5")] = 5.0  # edge 0 -> 1
        supernet.alphas[:, 2, NAMES.index("max_pool3")] = 4.0  # edge 1 -> 2
        supernet.alphas[:, 1, NAMES.index("identity")] = 3.0  # edge 0 -> 2
    cells = supernet.run_artefacts()["genotype.json"]["cells"]
    assert cells[0] == [
        {"node": 1, "from": 0, "op": "conv5"},
        {"node": 2, "from": 1, "op": "max_pool3"},
        {"node": 2, "from": 0, "op": "identity"},
    ]


def test_the_derived_student_needs_its_genotype(tiny_teacher, tmp_path):
    with pytest.raises(Exception, match="run `distill fit` on a NasCnnSearch config first"):
        DistillationModule(
            task="sst2",
            student=NasCnnStudent(genotype=str(tmp_path / "none.json")),
            losses=[LogitsKD()],
            teacher=str(tiny_teacher),
        )
    assert ArchitectureCost().from_teacher == frozenset()
