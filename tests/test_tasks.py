from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.tasks import TASKS, get_task


def test_every_glue_task_is_known_by_its_usual_spellings():
    assert {"sst2", "cola", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"} <= set(TASKS)
    assert get_task("SST-2") is get_task("sst2") is get_task("sst-2")


def test_pair_tasks_and_regression_are_described():
    assert get_task("rte").is_pair and not get_task("sst2").is_pair
    assert get_task("stsb").num_labels == 1 and get_task("mnli").num_labels == 3
    assert get_task("cola").main_metric == "mcc" and get_task("mrpc").main_metric == "f1"


def test_unknown_task_names_the_choices():
    with pytest.raises(DistillError, match="unknown task 'sst3'.*sst2"):
        get_task("sst3")
