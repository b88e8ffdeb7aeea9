"""Loading a universe: a glob of files (names from the file names), a list of data:-style assets, named errors."""

from __future__ import annotations

import pytest

from kronos_model.errors import DataError
from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.universe.assets import load_universe


def _csvs(tmp_path, assets, names=("aa", "bb", "cc")):
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in zip(names, assets.values()):
        frame.drop(columns="amount").to_csv(folder / f"{name}.csv", index_label="date")
    return folder


def test_files_glob_names_from_file_names(tmp_path, assets):
    folder = _csvs(tmp_path, assets)
    cfg = load_config({"universe": {"files": str(folder / "*.csv"), "tz": "America/New_York"}})
    frames = load_universe(cfg)
    assert list(frames) == ["aa", "bb", "cc"]
    assert str(frames["bb"].index.tz) == "America/New_York"
    assert frames["bb"]["close"].equals(assets["B"]["close"].set_axis(frames["bb"].index))


def test_asset_list_mixes_a_file_and_a_dataset(tmp_path, assets):
    folder = _csvs(tmp_path, assets)
    cfg = load_config(
        {"universe": {"assets": [{"path": str(folder / "aa.csv")}, {"dataset": "sp500", "name": "SPX"}]}}
    )
    frames = load_universe(cfg)
    assert list(frames) == ["aa", "SPX"] and len(frames["SPX"]) > 4000


def test_one_file_is_not_a_universe(tmp_path, assets):
    folder = _csvs(tmp_path, {"A": assets["A"]}, names=("aa",))
    cfg = load_config({"universe": {"data_dir": str(folder)}})
    with pytest.raises(ConfigError, match="has 1 CSV/Parquet file"):
        load_universe(cfg)


def test_a_bad_file_is_named(tmp_path, assets):
    folder = _csvs(tmp_path, assets)
    (folder / "bb.csv").write_text("date,open,high,low\n2020-01-01,1,2,0.5\n")
    cfg = load_config({"universe": {"data_dir": str(folder)}})
    with pytest.raises(DataError, match="universe asset 'bb'.*close"):
        load_universe(cfg)


def test_exactly_one_source_of_assets(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of 'universe.assets'"):
        load_config({"universe": {"files": "*.csv", "data_dir": "x"}})
