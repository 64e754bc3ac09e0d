"""The GLUE tasks as presets of the built-in tasks: `data.task: sst2` names the columns, labels and metrics of
GLUE's own TSV files (in `data.data_dir`), and the `nyu-mll/glue` hub dataset when no folder is given."""

from __future__ import annotations

from distill import HubDataset, Preset

_BINARY = ["0", "1"]
_NLI2 = ["entailment", "not_entailment"]


def _preset(
    texts: list[str],
    label: str,
    labels: list[str] | None,
    metrics: list[str],
    config: str,
    hub_columns: dict[str, str] | None = None,
    dev_file: str = "dev.tsv",
    hub_dev_split: str = "validation",
    column_names: list[str] | None = None,
) -> Preset:
    arguments = {"text_columns": texts, "label_column": label, "metrics": metrics, "name": config}
    if labels is not None:
        arguments["labels"] = labels
    hub = HubDataset(
        path="nyu-mll/glue",
        name=config,
        validation_split=hub_dev_split,
        columns=hub_columns or {},
        class_names=False,  # GLUE's class ids are positions in `labels`; its hub names ("negative") are not
    )
    return Preset(arguments, {"train": "train.tsv", "validation": dev_file}, column_names, hub)


def classification_presets() -> dict[str, Preset]:
    return {
        "sst2": _preset(["sentence"], "label", _BINARY, ["accuracy"], "sst2"),
        "cola": _preset(
            ["sentence"],
            "label",
            _BINARY,
            ["mcc"],
            "cola",
            column_names=["source", "label", "author_label", "sentence"],
        ),
        "mrpc": _preset(
            ["#1 String", "#2 String"],
            "Quality",
            _BINARY,
            ["f1", "accuracy"],
            "mrpc",
            {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
        ),
        "qqp": _preset(
            ["question1", "question2"], "is_duplicate", _BINARY, ["accuracy", "f1"], "qqp", {"label": "is_duplicate"}
        ),
        "mnli": _preset(
            ["sentence1", "sentence2"],
            "gold_label",
            ["entailment", "neutral", "contradiction"],
            ["accuracy"],
            "mnli",
            {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
            dev_file="dev_matched.tsv",
            hub_dev_split="validation_matched",
        ),
        "qnli": _preset(["question", "sentence"], "label", _NLI2, ["accuracy"], "qnli"),
        "rte": _preset(["sentence1", "sentence2"], "label", _NLI2, ["accuracy"], "rte"),
    }


def regression_presets() -> dict[str, Preset]:
    return {
        "stsb": _preset(["sentence1", "sentence2"], "score", None, ["pearson", "spearman"], "stsb", {"label": "score"})
    }
