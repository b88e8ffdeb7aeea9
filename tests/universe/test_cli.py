"""``kronos-bt run`` on a universe YAML with ``--data-dir``: the summary, the files and one-line errors."""

from __future__ import annotations

import json

import yaml

from kronos_strategies.cli import main

from .conftest import universe_config


def _write(tmp_path, assets, cfg):
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in assets.items():
        frame.drop(columns="amount").to_csv(folder / f"{name.lower()}.csv", index_label="date")
    cfg["universe"] = {"data_dir": "replaced-by-the-option", "quantiles": 2}
    path = tmp_path / "uni.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, folder


def test_run_with_data_dir(tmp_path, assets, capsys):
    cfg = universe_config(tmp_path, k=2, n_drop=1)
    path, folder = _write(tmp_path, assets, cfg)
    out = tmp_path / "out"
    assert main(["run", str(path), "--data-dir", str(folder), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "topk on 5 assets (a, b, c, d, e)" in text
    assert "RankIC" in text and "Equal weight" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["universe"]["assets"] == ["a", "b", "c", "d", "e"]


def test_bad_data_dir_is_one_line(tmp_path, assets, capsys):
    cfg = universe_config(tmp_path)
    path, _ = _write(tmp_path, assets, cfg)
    assert main(["run", str(path), "--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--data-dir" in err and len(err.splitlines()) == 1
