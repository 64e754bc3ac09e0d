"""Every `trainer.strategy` the README offers is one the config parser accepts, so a user who copies the line
gets to the hardware check rather than a parse error."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, base_config, run_cli, write_config

LINES = re.findall(r"`trainer\.strategy: (.+?)`", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_offers_strategies():
    assert any("FSDPStrategy" in line for line in LINES) and "ddp" in LINES


@pytest.mark.parametrize("strategy", LINES, ids=range(len(LINES)))
def test_every_readme_strategy_line_parses(strategy, tiny_teacher, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", base_config(tiny_teacher, tmp_path))
    with pytest.raises(SystemExit) as printed:
        run_cli("fit", "--config", str(config), "--trainer.strategy", " ".join(strategy.split()), "--print_config")
    assert printed.value.code in (0, None)
    assert "strategy:" in capsys.readouterr().out
