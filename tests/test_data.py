from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from distill.errors import DistillError
from distill.tasks import get_task
from distill.training.data import GlueDataModule, read_glue_tsv
from tests.conftest import REFERENCE_TEACHER, RTE, SST2


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REFERENCE_TEACHER)


def test_reads_real_sst2_rows_with_labels_and_indices():
    rows = read_glue_tsv(SST2 / "train.tsv", get_task("sst2"), limit=300)
    assert len(rows["sentence"]) == len(rows["labels"]) == 300
    assert rows["idx"] == list(range(300))
    assert set(rows["labels"]) == {0, 1}
    assert rows["sentence"][0] == "hide new secretions from the parental units"


def test_quote_characters_stay_literal_in_real_rte_rows():
    rows = read_glue_tsv(RTE / "dev.tsv", get_task("rte"))
    assert len(rows["labels"]) == 277  # a CSV parser with quoting on would merge rows here
    assert rows["sentence1"][3].startswith('"The Amish community')
    assert set(rows["labels"]) == {0, 1}


def test_malformed_row_reports_its_line_number(tmp_path: Path):
    lines = (SST2 / "train.tsv").read_text().splitlines()[:6]
    lines[4] = lines[4] + "\textra field"
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DistillError, match=r"line 5: expected 2 tab-separated fields \(sentence, label\), found 3"):
        read_glue_tsv(tmp_path / "train.tsv", get_task("sst2"))


def test_unknown_label_and_missing_file_are_named(tmp_path: Path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nfine film\t7\n")
    with pytest.raises(DistillError, match=r"line 2: label '7' is not one of \['0', '1'\]"):
        read_glue_tsv(tmp_path / "train.tsv", get_task("sst2"))
    with pytest.raises(DistillError, match="dev.tsv does not exist"):
        read_glue_tsv(tmp_path / "dev.tsv", get_task("sst2"))


def test_wrong_folder_for_the_task_is_caught(tmp_path: Path):
    with pytest.raises(DistillError, match="header lacks column.*sentence1"):
        read_glue_tsv(SST2 / "dev.tsv", get_task("rte"))
    with pytest.raises(DistillError, match="is not a folder"):
        GlueDataModule(task="sst2", data_dir=str(tmp_path / "nowhere"))


def test_pairs_are_tokenised_together_and_padded_per_batch(tokenizer, tmp_path: Path):
    data = GlueDataModule(
        task="rte",
        data_dir=str(RTE),
        tokenizer=tokenizer,
        train_limit=64,
        eval_limit=32,
        batch_size=8,
        max_length=128,
        cache_dir=str(tmp_path),
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "idx"}
    assert batch["token_type_ids"].max() == 1  # the second sentence is segment 1
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())  # padded to the longest row
    assert len(data.splits["dev"]) == 32


def test_tokenised_splits_are_cached_by_fingerprint(tokenizer, tmp_path: Path):
    def build(max_length: int) -> GlueDataModule:
        data = GlueDataModule(
            task="sst2",
            data_dir=str(SST2),
            tokenizer=tokenizer,
            train_limit=200,
            eval_limit=50,
            max_length=max_length,
            cache_dir=str(tmp_path),
        )
        data.setup("fit")
        return data

    build(64)
    cached = sorted((tmp_path / "distill").glob("*.arrow"))
    mtimes = [f.stat().st_mtime_ns for f in cached]
    build(64)
    assert [f.stat().st_mtime_ns for f in cached] == mtimes  # reused, not rewritten
    build(32)
    assert len(list((tmp_path / "distill").glob("*.arrow"))) == len(cached) + 2  # a new max_length is a new key
