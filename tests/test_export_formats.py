"""Reading an export is one plugin kind, ExportFormat; the contract it replaced is refused with directions."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest

from distill import Compression, DistillError, ExportFormat, Stage, hookimpl, hookspecs
from distill.delivery.folder import read_card
from distill.export_format import export_formats
from distill.plugin_manager import refuse_retired_hooks
from tests.conftest import run_cli

SAVED = Path(__file__).parent / "exports"


def test_every_built_in_reader_is_an_installed_format():
    names = {cls.__name__ for cls in export_formats()}
    assert {"Int8Copy", "ExitingExport", "EliminatingExport", "LowRankExport", "SlimmedExport"} <= names
    assert all(issubclass(cls, ExportFormat) for cls in export_formats())


def test_a_plugin_still_implementing_distill_load_model_is_told_what_replaced_it():
    class OldPlugin:
        @staticmethod
        @hookimpl
        def distill_load_model(folder):
            return None

    manager = pluggy.PluginManager("distill")
    manager.add_hookspecs(hookspecs)
    manager.register(OldPlugin(), name="old")
    with pytest.raises(DistillError, match="'old' implements distill_load_model.*ExportFormat"):
        refuse_retired_hooks(manager)


def test_a_method_that_still_reads_exports_is_refused_when_defined():
    with pytest.raises(DistillError, match="defines report_sections.*ExportFormat subclass"):

        class Reporting(Compression):
            stage = Stage.STRUCTURE

            @classmethod
            def report_sections(cls, model):
                return []


def test_a_copy_inside_an_export_reads_the_card_of_the_export(tmp_path):
    assert read_card(SAVED / "hf" / "int8")["task"] == "sst2"
    assert read_card(SAVED / "hf" / "onnx" / "model_static_int8.onnx")["task"] == "sst2"
    output = tmp_path / "labelled.jsonl"
    run_cli("predict", "--model", str(SAVED / "hf" / "int8"), "--input", str(SAVED / "rows.jsonl"), "--output",
            str(output))  # fmt: skip
    assert len(output.read_text().splitlines()) == 16
    (tmp_path / "a" / "int8").mkdir(parents=True)  # in no export: no card to share
    assert read_card(tmp_path / "a" / "int8") == {}
