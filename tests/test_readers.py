"""File layouts beyond plain tables are plugins: the built-in tasks register the CoNLL and SQuAD readers, and the
core finds a reader by suffix, by content or by name without knowing either."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill import DistillError
from distill.plugins.tasks import ConllReader, SquadReader
from distill.sources import DataFiles, file_format, readers, row_place
from tests.conftest import CONLL, SHARED

SQUAD = SHARED / "data" / "squad-v2-sample" / "dev-v2.0-sample.json"


def test_the_built_in_readers_are_registered_and_found_by_suffix_content_and_name(tmp_path):
    assert readers() == {"conll": ConllReader, "squad": SquadReader}
    conll = tmp_path / "dev.conll"
    conll.write_text((CONLL / "dev.txt").read_text())
    assert file_format(conll, "key") == "conll" and file_format(SQUAD, "key") == "squad"
    assert file_format(CONLL / "dev.txt", "key", "conll") == "conll"
    rows = DataFiles(train=str(CONLL / "dev.txt"), format="conll").load("train")
    assert rows.column_names == ["tokens", "tags"] and len(rows) == 3250
    assert row_place("conll", 2) == "sentence 3" and row_place("squad", 0) == "question 1"


def test_an_unknown_format_names_every_format_there_is():
    with pytest.raises(DistillError, match="unknown format 'xml'; formats are csv, tsv, json, jsonl, parquet, conll"):
        file_format(Path("rows.xml"), "data.files.format", "xml")
