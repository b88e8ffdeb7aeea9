"""``kronos-bt paper``, ``paper report`` and ``emulator`` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kronos_strategies.cli import main

from .helpers import ENV


def _yaml(tmp_path: Path, csv: Path, url: str, **paper: object) -> Path:
    doc = {
        "data": {"path": str(csv)},
        "indicator": {"lookback": 8},
        "strategy": {"name": "tests.paper.helpers:SmaCross", "params": {"fast": 3, "slow": 8, "stake": 1.0}},
        "broker": {"cash": 10_000, "commission": 0.001, "slippage": 0.0},
        "paper": {
            "symbol": "BTC/USDT",
            "timeframe": "1m",
            "url": url,
            "journal": str(tmp_path / "cli.sqlite"),
            "poll": 0.01,
            "timeout_ms": 300,
            "backoff": 0.01,
            "max_backoff": 0.05,
        }
        | paper,  # fmt: skip
    }
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_paper_run_then_report(emulator, candles_csv, tmp_path, capsys):
    emu = emulator(bar_seconds=0.02)
    config = _yaml(tmp_path, candles_csv, emu.url)
    assert main(["paper", str(config), "--max-bars", "30"]) == 0
    out = capsys.readouterr().out
    assert "paper trading BTC/USDT 1m" in out and "30 bar(s) processed" in out
    html = tmp_path / "report" / "tearsheet.html"
    assert main(["paper", "report", str(tmp_path / "cli.sqlite"), "--out", str(tmp_path / "report")]) == 0
    assert (
        html.read_text().lstrip().lower().startswith("<!doctype html") or "<html" in html.read_text()[:2000]
    )


@pytest.mark.parametrize(
    ("paper", "argv", "message"),
    [
        ({"symbol": "BTC/USDX"}, [], "did you mean 'BTC/USDT'"),
        ({"timeframe": "7m"}, [], "no timeframe '7m'"),
        ({"mode": "live"}, [], "--live was not given"),
        ({"mode": "sandbox"}, ["--live"], "set mode: live"),
        ({"mode": "sandbox", "api_key_env": "KBT_TEST_KEY", "secret_env": "KBT_TEST_SECRET"}, [], "API key"),
        ({"mood": "paper"}, [], "did you mean 'paper.mode'"),
        ({"mode": "sandbox"}, ["--set", "paper.mode=live", "--live"], "--set paper.mode=live is refused"),
        ({"mode": "sandbox"}, ["--set", "paper.mode=live"], "--set paper.mode=live is refused"),
    ],
)
def test_bad_input_is_one_line(emulator, candles_csv, tmp_path, capsys, monkeypatch, paper, argv, message):
    monkeypatch.setenv("KBT_TEST_KEY", ENV["KRONOS_BT_API_KEY"])
    monkeypatch.setenv("KBT_TEST_SECRET", "not-the-right-secret")
    config = _yaml(tmp_path, candles_csv, emulator(bar_seconds=60.0).url, **paper)
    assert main(["paper", str(config), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert "not-the-right-secret" not in err
    assert not (tmp_path / "cli.sqlite").exists(), "a journal was created before the input was checked"


def test_emulator_command_serves_and_exits(candles_csv, capsys, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    argv = ["emulator", "--csv", str(candles_csv), "--port", "0", "--history", "50", "--exit-after", "0.2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "350 candles" in out and ENV["KRONOS_BT_API_SECRET"] not in out


@pytest.mark.parametrize("name", ["topk", "long_short"])
def test_a_ranking_strategy_is_refused_before_any_order(emulator, candles_csv, tmp_path, capsys, name):
    """A ranking strategy without a universe: block would trade orders no backtest made: one line, no journal."""
    config = _yaml(tmp_path, candles_csv, emulator(bar_seconds=60.0).url)
    doc = yaml.safe_load(config.read_text())
    doc["strategy"] = {"name": name, "params": {}}
    config.write_text(yaml.safe_dump(doc))
    assert main(["paper", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "add a universe: block with 'source: ccxt' assets" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cli.sqlite").exists()
