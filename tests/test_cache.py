from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from distill.errors import DistillError
from distill.features import Features
from distill.plugins.losses import AttentionKD, HardLabelCE, HiddenStatesKD, LogitsKD
from distill.students.encoder import BertStudent
from distill.training.cache import CacheLayout, CacheStore, TeacherCache, at_cache_precision
from distill.training.data import TaskDataModule
from distill.training.module import DistillationModule
from tests.conftest import SST2


def module_and_data(teacher_dir, cache_dir, tmp_path, losses=None, max_length=64, features=("logits",)):
    module = DistillationModule(
        task="sst2",
        student=BertStudent(num_layers=1, init_from_teacher=[0]),
        losses=losses or [HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=2.0)],
        teacher=str(teacher_dir),
        learning_rate=1e-3,
        teacher_cache=TeacherCache(directory=str(cache_dir), features=list(features)),
    )
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=module.tokenizer,
        train_limit=96,
        eval_limit=16,
        batch_size=32,
        max_length=max_length,
        cache_dir=str(tmp_path / "tokens"),
    )
    return module, data


def fit(module, data, tmp_path, epochs):
    trainer = Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)


@torch.no_grad()
def cached_and_live(module, data) -> tuple:
    """(batch, student features, teacher features from the cache, the same computed live) for a first batch."""
    batch = next(iter(data.train_dataloader()))
    module.eval()
    student = module.student(batch, module.student_needs)
    cached = module.cache.lookup(batch, lambda: pytest.fail("every row is cached"))
    return batch, student, cached, at_cache_precision(module.teacher(batch, module.teacher_needs))


class CountingTeacher:
    """Wraps the teacher's forward to count the batches it really runs."""

    def __init__(self, module):
        self.calls, original = 0, module.teacher.forward

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        module.teacher.forward = counted


def test_epochs_after_the_first_read_the_cache(tiny_teacher, tmp_path):
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path)
    counter = CountingTeacher(module)
    fit(module, data, tmp_path, epochs=3)
    assert counter.calls == 3  # 96 rows in batches of 32: the first epoch only
    assert module.cache.complete
    stored = module.cache.arrays["logits"]
    assert stored.dtype == np.float16 and stored.shape == (96, 2)


def test_cached_and_live_rows_give_identical_losses(tiny_teacher, tmp_path):
    seed_everything(0)
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path)
    fit(module, data, tmp_path, epochs=1)
    batch, student, cached, live = cached_and_live(module, data)
    with torch.no_grad():
        assert module.objective(student, cached, batch)[0].item() == module.objective(student, live, batch)[0].item()
        module.cache = None  # the same batch through the no-cache path
        assert (
            module.objective(student, module.features(batch)[1], batch)[0].item()
            == module.objective(student, cached, batch)[0].item()
        )


def test_any_change_to_teacher_or_data_gives_a_new_cache(tiny_teacher, tmp_path):
    for max_length in (64, 32):
        module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path, max_length=max_length)
        fit(module, data, tmp_path, epochs=1)
    with torch.no_grad():
        module.teacher.model.classifier.bias.add_(1.0)
    fit(module, data, tmp_path, epochs=1)
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_corrupt_cache_is_rebuilt_and_partial_cache_is_completed(tiny_teacher, tmp_path):
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path)
    fit(module, data, tmp_path, epochs=1)
    folder = module.cache.folder
    reference = np.array(module.cache.arrays["logits"])
    with open(folder / "logits.npy", "r+b") as handle:  # a crash cut the file short
        handle.truncate(100)
    store = CacheStore(folder, CacheLayout(96, {"logits": 2}))
    assert not store.filled.any()
    store.filled[:] = 1
    store.arrays["logits"][:] = reference
    store.filled[:48] = 0  # an interrupted first epoch
    batch = {"idx": torch.arange(40, 56), "input_ids": torch.zeros(16, 3), "attention_mask": torch.ones(16, 3)}
    live = torch.full((16, 2), 7.0)
    features = store.lookup(batch, lambda: Features(logits=live, attention_mask=batch["attention_mask"]))
    assert (features.logits == 7.0).all() and store.filled[40:56].all() and not store.filled[:40].any()


def test_cache_refuses_attention_losses_and_unknown_features(tiny_teacher, tmp_path):
    losses = [LogitsKD(), AttentionKD()]
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path, losses=losses)
    with pytest.raises(DistillError, match="attention maps and values are not cached"):
        fit(module, data, tmp_path, epochs=1)
    with pytest.raises(DistillError, match="cannot be cached"):
        TeacherCache(features=["logits", "attentions"])


def test_hidden_states_are_cached_for_the_layers_read_per_real_token(tiny_teacher, tmp_path):
    """Only teacher layer 2 is read, so only it is kept: float16, one row per real token, no padding."""
    seed_everything(0)
    losses = [LogitsKD(), HiddenStatesKD(layers=[[1, 2]])]
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path, losses=losses,
                                   features=("logits", "hidden_states"))  # fmt: skip
    counter = CountingTeacher(module)
    fit(module, data, tmp_path, epochs=2)
    assert counter.calls == 3  # the second epoch reads every hidden state from the cache
    arrays = module.cache.arrays
    tokens = sum(sum(mask) for mask in data.splits["train"]["attention_mask"])
    assert set(arrays) == {"logits", "hidden_states.2"}
    assert arrays["hidden_states.2"].shape == (tokens, 32) and arrays["hidden_states.2"].dtype == np.float16
    assert module.cache.layout.bytes == 2 * (96 * 2 + tokens * 32) + 96 + 8 * 97

    batch, student, cached, live = cached_and_live(module, data)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(cached.hidden_states[2][real], live.hidden_states[2][real], rtol=0, atol=0)
    with torch.no_grad():
        assert module.objective(student, cached, batch)[0].item() == module.objective(student, live, batch)[0].item()


def test_a_cache_too_large_for_the_disk_is_refused_before_training(tiny_teacher, tmp_path, monkeypatch):
    losses = [LogitsKD(), HiddenStatesKD()]
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path, losses=losses,
                                   features=("logits", "hidden_states"))  # fmt: skip
    counter = CountingTeacher(module)
    monkeypatch.setattr("distill.training.cache.shutil.disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(DistillError, match=r"teacher cache would take .* MiB in .* which has 0\.0 MiB free"):
        fit(module, data, tmp_path, epochs=1)
    assert counter.calls == 0 and not any((tmp_path / "cache").iterdir())


def test_a_damaged_cache_is_detected_by_its_checksum_and_rebuilt(tiny_teacher, tmp_path):
    """Random bytes over the logits, with shape and dtype intact, made every loss NaN; now they are caught."""
    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path)
    fit(module, data, tmp_path, epochs=1)
    folder, reference = module.cache.folder, np.array(module.cache.arrays["logits"])
    header = len((folder / "logits.npy").read_bytes()) - reference.nbytes
    noise = np.random.default_rng(0).integers(0, 256, reference.nbytes, dtype=np.uint8).tobytes()
    with open(folder / "logits.npy", "r+b") as handle:  # the .npy header (shape, dtype) stays intact
        handle.seek(header)
        handle.write(noise)
    assert np.load(folder / "logits.npy").shape == reference.shape
    assert not np.isfinite(np.load(folder / "logits.npy").astype(np.float32)).all()

    module, data = module_and_data(tiny_teacher, tmp_path / "cache", tmp_path)
    counter = CountingTeacher(module)
    with pytest.warns(UserWarning, match="does not match its checksum"):
        fit(module, data, tmp_path, epochs=1)
    assert counter.calls == 3  # every row computed afresh
    np.testing.assert_array_equal(np.array(module.cache.arrays["logits"]), reference)
    assert all(torch.isfinite(p).all() for p in module.student.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CacheStore(
            folder, CacheLayout(96, {"logits": 2})
        )  # sealed again at the epoch's end: it opens without a warning
