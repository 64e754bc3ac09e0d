from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from distill.delivery.measure import count_parameters, sparsity, weights_size_on_disk


def test_known_model_gives_exactly_its_parameter_counts():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    counts = count_parameters(model)
    assert counts == {"total": 40 + 15 + 6, "without_embeddings": 21, "nonzero": counts["nonzero"]}
    assert counts["nonzero"] == 61  # random initialisation leaves no exact zeros


def test_pruned_model_nonzero_count_matches_its_masks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.random_unstructured(model[1], "weight", amount=0.25)
    kept = int(model[0].weight_mask.sum() + model[1].weight_mask.sum())
    for layer in model:
        prune.remove(layer, "weight")
    counts = count_parameters(model)
    assert counts["nonzero"] == kept + 16 + 4  # biases are untouched
    measured = sparsity(model)
    assert measured["0"] == 0.5 and measured["1"] == 0.25
    assert abs(measured["overall"] - (128 + 16) / (256 + 64)) < 1e-9


def test_quantized_models_keep_the_counts_of_their_float_original():
    from distill.plugins.quantization import quantize

    model = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 4), nn.LSTM(8, 4))
    assert count_parameters(quantize(model, per_channel=True, embeddings=True)) == count_parameters(model)


def test_size_on_disk_counts_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "model.pt").write_bytes(b"x" * 300)  # a variant of the model, measured on its own
    assert weights_size_on_disk(tmp_path) == 1000
    assert weights_size_on_disk(tmp_path / "int8") == 300


class CpuOnly(nn.Module):
    """A model that, like torch's int8 or an onnxruntime CPU session, cannot move to an accelerator."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def to(self, *args, **kwargs):
        if str(args[0] if args else kwargs.get("device")) != "cpu":
            raise NotImplementedError("no kernel for this device")
        return super().to(*args, **kwargs)

    def forward(self, **inputs):
        return self.model(**inputs)


def test_with_a_gpu_the_report_card_times_every_model_that_runs_there_and_names_the_device(tiny_teacher, monkeypatch):
    """A fake GPU (the CPU under another name, whose synchronisation is counted) runs the GPU rows' code path."""
    from distill import Teacher
    from distill.delivery import measure
    from distill.delivery.report import choice_markdown, compare, latency_markdown
    from distill.delivery.timing import Device
    from distill.registry import task_from_spec
    from distill.sources import DataFiles
    from tests.conftest import SST2

    waits = []
    monkeypatch.setattr(measure, "accelerators", lambda: [Device("cpu:0", "GPU (fake)", lambda: waits.append(1))])
    teacher, task = Teacher(str(tiny_teacher)), task_from_spec("sst2")
    examples = task.read(DataFiles(validation=str(SST2 / "dev.tsv")), "validation").select(range(16))
    models = {
        "teacher": (teacher.model, teacher.tokenizer, None),
        "cpu_only": (CpuOnly(teacher.model), teacher.tokenizer, None),
    }
    rows = compare(measure.measure_models(models, task, examples, latency_rows=8, max_length=32), task)
    teacher_row, cpu_row = rows
    assert teacher_row["gpu_device"] == "GPU (fake)" and teacher_row["gpu_speedup_batch1"] == 1.0
    assert teacher_row["gpu_median_ms_batch1"] > 0 and teacher_row["gpu_median_ms_batch32"] > 0
    assert cpu_row["gpu_median_ms_batch1"] is None and cpu_row["gpu_skipped"].startswith("runs on the CPU only")
    assert len(waits) >= 2 * 8 + 2  # every timed call at batch 1 (two rounds of 8), and after each warm-up
    table = latency_markdown(rows)
    assert "On the GPU (fake), each call synchronised" in table and "| cpu_only | runs on the CPU only" in table
    choice = choice_markdown(rows, tolerance_points=100.0)
    assert "- CPU, batch 1: **cpu_only**" in choice and "- GPU (fake), batch 1: no variant" in choice
