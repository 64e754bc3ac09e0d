"""The survey's methods (issue 17) on every built-in family where their maths holds, and refused where it does not.

Each cell builds a three-layer student of the family from its tiny teacher, lets the method shape it, takes one
training step, finalises, exports and reloads to the same outputs, without a Trainer (the method-specific
tests under tests/plugins train them for real).
"""

from __future__ import annotations

import pytest
import torch

from distill.compression import finalize, served_logits
from distill.delivery.batching import model_inputs
from distill.delivery.export import export_student
from distill.delivery.loading import load_model
from distill.delivery.measure import weights_size_on_disk
from distill.errors import DistillError
from distill.plugins.codebook import EmbeddingCodebook
from distill.plugins.decomposition import LowRankDecomposition
from distill.plugins.layer_drop import LayerDrop
from distill.plugins.local_attention import LocalAttention
from distill.plugins.losses import LogitsKD
from distill.plugins.outliers import OutlierQuantization
from distill.plugins.sharing import ParameterSharing
from distill.plugins.squeezing import WeightSqueezing
from distill.plugins.word_elimination import WordVectorElimination
from distill.students.encoder import EncoderStudent
from distill.training.module import DistillationModule
from tests.families import FAMILIES, matrix
from tests.plugins.conftest import DEV_TEXTS

ADAPTED = tuple(f for f in FAMILIES if f != "xlm-roberta")
POSITIONS_IN_LAYERS = {"deberta-v2", "modernbert", "mpnet"}
METHODS = {
    "low_rank": (lambda: LowRankDecomposition(embedding_rank=8), set()),
    "sharing": (lambda: ParameterSharing(start="teacher_average"), set()),
    "codebook": (lambda: EmbeddingCodebook(codebooks=2, codewords=16, iterations=2), set()),
    "squeezing": (lambda: WeightSqueezing(), set()),
    "layer_drop": (lambda: LayerDrop(rate=0.5, head_rate=0.3), set()),
    # 8 bits: at 4 a tiny random model's logits move too far to compare (test_outliers.py checks 4 bits on real weights)
    "outliers": (lambda: OutlierQuantization(bits=[8], aware_training=True, plain=False), set()),
    "power": (lambda: WordVectorElimination(keep=[6, 3]), POSITIONS_IN_LAYERS),
    "local_attention": (lambda: LocalAttention(group=4, layers=[1]), {"deberta-v2", "mpnet"}),
}
SHRINKS = {"low_rank", "sharing", "codebook"}


def _outputs(model, tokenizer, student=None, methods=()) -> torch.Tensor:
    batch = dict(tokenizer(DEV_TEXTS[:8], padding=True, return_tensors="pt"))
    with torch.no_grad():
        if student is not None:
            served = served_logits(methods, student, batch)
            return served if served is not None else student(batch, frozenset({"logits"})).logits
        output = model(**model_inputs(model, batch))
    return output.logits if hasattr(output, "logits") else output


def _step(module: DistillationModule) -> None:
    """One optimizer step on real rows, through every loss term the methods brought."""
    batch = dict(module.tokenizer(DEV_TEXTS[8:16], padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([0, 1] * 4)
    student = module.student.train()
    features = student(batch, module.student_needs)
    with torch.no_grad():
        teacher_features = module.teacher(batch, module.teacher_needs)
    loss = sum(term(features, teacher_features, batch) for term in module.losses)
    loss.backward()
    torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=1e-2).step()
    assert torch.isfinite(loss)
    student.eval()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", matrix(ADAPTED))
def test_each_survey_method_works_on_each_family_where_its_maths_holds(family, method, family_teachers, tmp_path):
    make, refused = METHODS[method]
    build = {"task": "sst2", "teacher": str(family_teachers[family]), "losses": [LogitsKD(weight=1.0)]}
    student = EncoderStudent(num_layers=3, init_from_teacher=[0, 1, 1])
    module = DistillationModule(**build, student=student, compression=[make()])
    if family in refused:
        with pytest.raises(DistillError):
            module.configure_model()
        return
    module.configure_model()
    _step(module)
    plain = DistillationModule(**build, student=student, compression=[])
    finalize(module.compression, module.student)
    expected = _outputs(None, module.tokenizer, module.student, module.compression)
    folder = tmp_path / "export"
    export_student(module.student, module.tokenizer, folder, {}, module.compression)
    loaded, tokenizer = load_model(folder)
    torch.testing.assert_close(_outputs(loaded, tokenizer), expected, atol=1e-5, rtol=1e-4)
    if method in SHRINKS:
        export_student(plain.student, plain.tokenizer, tmp_path / "plain", {}, [])
        assert weights_size_on_disk(folder) < weights_size_on_disk(tmp_path / "plain")
    if method == "outliers":
        low_bit, _ = load_model(folder / "w8")
        assert (_outputs(low_bit, tokenizer) - expected).abs().max() < 0.05 + 0.1 * expected.abs().max()
