"""``kronos-bt finetune`` in one process: output folder, records, model card, loss table, named errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kronos_strategies.cli import main
from tests.model.test_training import ohlcv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"


def write_series(folder: Path, count: int = 3, bars: int = 160) -> Path:
    """``count`` synthetic hourly OHLCV CSVs (seeded random walks) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        df = ohlcv(bars, 10 + k, start="2021-01-01", freq="h")
        df.index.name = "timestamp"
        df.to_csv(folder / f"series{k}.csv")
    return folder


def job_yaml(tmp_path: Path, **overrides) -> Path:
    job = {
        "name": "tiny-job",
        "data": [str(tmp_path / "data")],
        "model": {"name": str(FIXTURES)},
        "train": "both",
        "finetune": {
            "lookback": 16,
            "horizon": 4,
            "batch_size": 8,
            "epochs": 2,
            "steps_per_epoch": 3,
            "val_fraction": 0.3,
            "max_val_windows": 16,
            "lr": 0.001,
            "device": "cpu",
        },  # fmt: skip
        "output": str(tmp_path / "out"),
        **overrides,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_finetune_cli_single_process(tmp_path, capsys):
    write_series(tmp_path / "data")
    assert main(["finetune", str(job_yaml(tmp_path)), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "out"
    for part in ("tokenizer", "predictor"):
        assert {p.name for p in (out / part).iterdir()} == {
            "config.json",
            "model.safetensors",
            "training_record.json",
        }
        record = json.loads((out / part / "training_record.json").read_text())
        assert record["kind"] == part and record["steps"] == 6 and len(record["step_losses"]) == 6
        assert [d["name"] for d in record["data"]] == ["series0", "series1", "series2"]
    assert "tokenizer      2      6" in printed and "predictor      2      6" in printed
    card = (out / "README.md").read_text()
    assert "# tiny-job" in card and f"model: {{name: {out}}}" in card and "series2" in card
    assert yaml.safe_load((out / "finetune.yaml").read_text())["train"] == "both"
    # the result loads like any checkpoint folder and forecasts
    from kronos_model import KronosPredictor

    predictor = KronosPredictor.from_pretrained(str(out), device="cpu")
    frame = ohlcv(40, 99, freq="h")
    assert predictor.forecast(frame, 3, sample_count=2, seed=0).samples.shape == (2, 3, 6)
    # a second run into the same folder is refused instead of overwriting it
    assert main(["finetune", str(job_yaml(tmp_path)), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"finetune": {"learning_rate": 0.1}}, "unknown key 'finetune.learning_rate'"),
        ({"modle": {}}, "unknown key 'modle'; did you mean 'model'"),
        ({"train": "all"}, "'train' must be one of"),
        ({"finetune": {"batch_size": 6, "micro_batch_size": 4}}, "micro_batch_size"),
        ({"data": ["missing/*.csv"]}, "matches no CSV/Parquet file"),
        ({"finetune": {"lookback": 400}}, "series too short"),
    ],
)
def test_bad_jobs_fail_with_one_named_line(tmp_path, capsys, overrides, message):
    write_series(tmp_path / "data", count=1)
    assert main(["finetune", str(job_yaml(tmp_path, **overrides)), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kronos-bt: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_bad_data_file_is_named(tmp_path, capsys):
    folder = write_series(tmp_path / "data", count=2)
    (folder / "series1.csv").write_text("timestamp,open,high,low,close\n2021-01-01,1,2,0.5,-1\n")
    assert main(["finetune", str(job_yaml(tmp_path)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "series1" in err and "non-positive prices" in err and "file line 2" in err


def test_ccxt_source_downloads_once_through_the_emulator(tmp_path, capsys):
    """``source: ccxt`` uses the backtests' cached download: the second job sends no request."""
    from tests.paper.helpers import start_emulator, write_candles

    emu = start_emulator(write_candles(tmp_path / "c.csv", n=400, seed=1), start_index=300, bar_seconds=60.0)
    try:
        data = [{
            "source": "ccxt", "symbol": "BTC/USDT", "timeframe": "1m", "url": emu.url,
            "since": "2024-01-01T00:00", "until": "2024-01-01T04:00", "cache_dir": str(tmp_path / "ohlcv"),
        }]  # fmt: skip
        assert main(["finetune", str(job_yaml(tmp_path, data=data, train="predictor")), "--no-progress"]) == 0
        record = json.loads((tmp_path / "out/predictor/training_record.json").read_text())
        assert record["data"][0]["name"] == "BTC/USDT 1m" and record["data"][0]["bars"] == 240
        sent = emu.requests
        assert sent > 0
        path = job_yaml(tmp_path, data=data, train="predictor", output=str(tmp_path / "again"))
        assert main(["finetune", str(path), "--no-progress"]) == 0
        assert emu.requests == sent
    finally:
        emu.stop()
