"""Universe runs use the single-asset run-folder scheme: ``<out>/<UTC time>-<hash>/`` plus ``latest``, ``--force``."""

from __future__ import annotations

import os

import pytest
import yaml

from kronos_strategies.errors import ConfigError
from kronos_strategies.universe.runner import run_universe_backtest

from .conftest import universe_config


def test_new_folders_latest_link_and_force(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=2, n_drop=1)
    base = tmp_path / "run"
    first = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, new_folder=True)
    second = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, new_folder=True)
    folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink())
    assert len(folders) == 2 and all(p.name[:8].isdigit() and len(p.name.split("-")[2]) == 8 for p in folders)
    assert first.files["manifest"].parent != second.files["manifest"].parent
    assert os.readlink(base / "latest") == second.files["manifest"].parent.name  # relative, the newest
    assert (base / "latest" / "metrics.json").is_file()
    # a fixed folder that holds a run is refused (before any forecast) unless forced
    fixed = tmp_path / "fixed"
    run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, out_dir=fixed, force=False)
    computed = counting_predictor.windows_computed
    with pytest.raises(ConfigError, match=r"already holds a run \(manifest.json\); pass --force"):
        run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, out_dir=fixed, force=False)
    assert counting_predictor.windows_computed == computed
    run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, out_dir=fixed, force=True)


def test_cli_run_writes_a_run_folder_and_refuses_out_without_force(tmp_path, assets, capsys):
    from kronos_strategies.cli import main

    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in list(assets.items())[:3]:
        frame.to_csv(folder / f"{name}.csv", index_label="timestamp")
    raw = universe_config(tmp_path, k=1, n_drop=1)
    raw["universe"] = {"data_dir": "unused"}
    path = tmp_path / "uni.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(path), "--data-dir", str(folder), "--no-progress"]) == 0
    latest = tmp_path / "run" / "latest"
    assert latest.is_symlink() and (latest / "manifest.json").is_file()
    assert f"wrote {latest.resolve()}/" in capsys.readouterr().out
    out = tmp_path / "out"
    args = ["run", str(path), "--data-dir", str(folder), "--no-progress", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
