"""Every shipped recipe resolves: its keys, class names and shared data blocks are what distill fit reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.embedding_data import write as write_embedding_data
from distill.registry import find_preset
from tests.conftest import ROOT, run_cli

OVERLAYS = {"quickstart.yaml"}  # stacked on a recipe, never run alone
SHARED = {"data.yaml", "data_transfer.yaml", "data_transfer_x1.yaml"}  # data blocks recipes name
RECIPES = sorted(p.relative_to(ROOT) for p in (ROOT / "configs").rglob("*.yaml") if p.name not in OVERLAYS | SHARED)


@pytest.mark.parametrize("recipe", RECIPES, ids=str)
def test_every_recipe_resolves_with_its_shared_data_block(recipe: Path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # recipes give paths relative to the repository root, as the README runs them
    if recipe.parent.name == "embeddings":  # its data is written by the script the README runs first, not shipped
        write_embedding_data(tmp_path / "data/embeddings", sst2=20, conll=20, queries=20)
        (tmp_path / "configs").symlink_to(ROOT / "configs")
        monkeypatch.chdir(tmp_path)
    overlay = ["--config", "configs/quickstart.yaml"] if recipe.parent.name == "sst2" else []
    with pytest.raises(SystemExit) as done:
        run_cli("fit", "--config", str(recipe), *overlay, "--print_config")
    assert done.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    data = resolved["data"]
    assert data["task"]
    if data.get("files"):
        assert all(Path(data["files"][split]).is_file() for split in ("train", "validation"))
    elif data.get("data_dir"):
        assert Path(data["data_dir"]).is_dir()
    else:  # SQuAD has no local copy: the preset reads the hub (benchmarks/squad_sample.py gives files instead)
        assert find_preset(data["task"])[1].hub is not None
    assert resolved["model"]["losses"]


def test_the_sst2_recipes_share_their_data_block():
    inline = [p.name for p in (ROOT / "configs" / "sst2").glob("*.yaml") if "\n  data_dir:" in p.read_text()]
    assert inline == ["nas_cnn_search.yaml"]  # the search alone trains on batches of 64 without the transfer set
