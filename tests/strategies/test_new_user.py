"""Issue 12: what a new user hits on their own data, one test per reported row, through ``kronos-bt``'s main."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kronos_strategies.cli import main
from kronos_strategies.reporting import periods_per_year, write_tearsheet

from .conftest import tiny_config

# ------------------------------------------------------------------------------------------ helpers


def _yaml(tmp_path: Path, **sections: object) -> Path:
    """The tiny backtest as a YAML file whose reports go under tmp_path/runs/{name}."""
    cfg = tiny_config(tmp_path, **sections)
    cfg["output"] = {"dir": str(tmp_path / "runs" / "{name}"), "tearsheet": False, "chart": False}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _daily_csv(path: Path, sp500_bars: pd.DataFrame, *, scale: float = 1.0, start: str = "2014-11-01",
               end: str = "2015-05-31", drop: tuple[str, str] | None = None, columns: dict | None = None) -> Path:  # fmt: skip
    """A daily OHLCV CSV (timestamp,open,high,low,close,volume) cut from the S&P 500, prices scaled."""
    bars = sp500_bars.loc[start:end, ["open", "high", "low", "close", "volume"]].copy()
    bars[["open", "high", "low", "close"]] *= scale
    if drop is not None:
        bars = bars[(bars.index < drop[0]) | (bars.index > drop[1])]
    for name, values in (columns or {}).items():
        bars[name] = values(bars) if callable(values) else values
    bars.to_csv(path, index_label="timestamp")
    return path


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("kronos-bt: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _fx_hourly(n_weeks: int = 3, seed: int = 3) -> pd.DataFrame:
    """Synthetic EUR/USD-like hourly bars: Sunday 22:00 to Friday 21:00 UTC, closed at weekends."""
    hours = pd.date_range("2024-01-07 22:00", periods=24 * 7 * n_weeks, freq="h", tz="UTC")
    d, h = hours.day_of_week, hours.hour
    open_ = (d < 4) | ((d == 4) & (h < 22)) | ((d == 6) & (h >= 22))
    hours = hours[open_]
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, len(hours))))
    prev = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame({"open": prev, "close": close}, index=hours.tz_localize(None))
    frame["high"] = frame.max(axis=1) * 1.0005
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.9995
    frame["volume"] = rng.integers(100, 1000, len(frame)).astype(float)
    return frame[["open", "high", "low", "close", "volume"]]


def _latest(tmp_path: Path, name: str) -> Path:
    return tmp_path / "runs" / name / "latest"


# ------------------------------------------------------------------------------------------ labels, overwrites


def test_data_flag_names_the_run_titles_and_benchmark_after_the_file(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path)
    other = _daily_csv(tmp_path / "other_index.csv", sp500_bars, scale=0.37)
    code, out, err = _run(capsys, "run", str(path), "--data", str(other))
    assert code == 0, err
    assert "S&P 500" not in out
    assert out.startswith("tiny-other_index: threshold on other_index,")
    assert "Buy & hold other_index" in out
    run = _latest(tmp_path, "tiny-other_index").resolve()
    assert run.parent == tmp_path / "runs" / "tiny-other_index" and re.fullmatch(
        r"\d{8}-\d{6}-[0-9a-f]{8}", run.name
    )
    manifest = json.loads((run / "manifest.json").read_text())
    assert (
        manifest["config"]["data"]["path"] == str(other)
        and manifest["config"]["data"]["name"] == "other_index"
    )

    # a data error in that file names that file, not the YAML's S&P 500, with the timestamp and the file line
    bad = _daily_csv(tmp_path / "other_index_nan.csv", sp500_bars)
    text = bad.read_text().splitlines()
    cells = text[10].split(",")  # file line 11 = the 10th bar
    cells[4] = ""
    text[10] = ",".join(cells)
    bad.write_text("\n".join(text) + "\n")
    code, _, err = _run(capsys, "run", str(path), "--data", str(bad), "--name", "My index")
    _one_line_error(code, err, "My index has NaN", cells[0], "file line 11")


def test_two_backtests_with_different_data_from_one_yaml_both_stay_intact(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path)
    a = _daily_csv(tmp_path / "index_a.csv", sp500_bars, scale=1.0)
    b = _daily_csv(tmp_path / "index_b.csv", sp500_bars, scale=2.0)
    assert _run(capsys, "run", str(path), "--data", str(a))[0] == 0
    assert _run(capsys, "run", str(path), "--data", str(b))[0] == 0
    closes = {}
    for name, source in (("tiny-index_a", a), ("tiny-index_b", b)):
        run = _latest(tmp_path, name)
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["config"]["data"]["path"] == str(source)
        assert json.loads((run / "metrics.json").read_text())["strategy"]["bars"] > 0
        closes[name] = pd.read_csv(run / "signals.csv")["upper"].dropna().median()
    assert closes["tiny-index_b"] == pytest.approx(2 * closes["tiny-index_a"], rel=0.2)  # each its own data

    # the same run again: a second folder next to the first, the first untouched
    first = _latest(tmp_path, "tiny-index_a").resolve()
    before = (first / "metrics.json").read_bytes()
    assert _run(capsys, "run", str(path), "--data", str(a))[0] == 0
    folders = [p for p in (tmp_path / "runs" / "tiny-index_a").iterdir() if not p.is_symlink()]
    assert len(folders) == 2 and (first / "metrics.json").read_bytes() == before
    assert _latest(tmp_path, "tiny-index_a").resolve() != first

    # an explicit --out that already holds a run is refused without --force
    out = tmp_path / "mine"
    assert _run(capsys, "run", str(path), "--out", str(out))[0] == 0
    code, _, err = _run(capsys, "run", str(path), "--out", str(out))
    _one_line_error(code, err, str(out), "--force")
    assert _run(capsys, "run", str(path), "--out", str(out), "--force")[0] == 0


# ------------------------------------------------------------------------------------------ one-line errors


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        (
            "strategy.params.enter",
            "abc",
            "'strategy.params.enter' must be float like the default 0.1, got 'abc'",
        ),
        (
            "strategy.params.stake",
            "lots",
            "'strategy.params.stake' must be float like the default 0.95, got 'lots'",
        ),
        (
            "strategy.params.allow_short",
            "3",
            "'strategy.params.allow_short' must be true/false like the default",
        ),
    ],
)
def test_strategy_params_are_type_checked_before_any_forecast(tmp_path, capsys, key, value, needle):
    path = _yaml(tmp_path)
    code, _, err = _run(capsys, "run", str(path), "--set", f"{key}={value}")
    _one_line_error(code, err, needle, f"--set {key}=")
    assert not (tmp_path / "cache").exists()  # failed before the first forecast was computed or cached


def test_header_only_and_zero_byte_files_are_named(tmp_path, capsys):
    path = _yaml(tmp_path)
    header = tmp_path / "header.csv"
    header.write_text("timestamp,open,high,low,close,volume\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, _, err = _run(capsys, "run", str(path), "--data", str(header))
    _one_line_error(code, err, "header has no rows")
    code, _, err = _run(
        capsys, "evaluate", "--csv", str(header), "--model", "none", "--out", str(tmp_path / "ev")
    )
    _one_line_error(code, err, "no rows")
    code, _, err = _run(capsys, "run", str(path), "--data", str(empty))
    _one_line_error(code, err, str(empty), "is empty")
    code, _, err = _run(capsys, "forecast", str(empty))
    _one_line_error(code, err, str(empty), "is empty")


def test_unknown_time_zone_is_named(tmp_path, capsys):
    path = _yaml(tmp_path)
    code, _, err = _run(capsys, "run", str(path), "--set", "data.tz=Europe/Nowhere")
    _one_line_error(code, err, "'data.tz'", "Europe/Nowhere")


def test_forecast_pred_len_zero_is_named(tmp_path, sp500_bars, capsys):
    csv = _daily_csv(tmp_path / "bars.csv", sp500_bars, start="2015-01-01", end="2015-03-31")
    code, _, err = _run(
        capsys,
        "forecast",
        str(csv),
        "--pred-len",
        "0",
        "--model",
        str(Path(__file__).parents[1] / "fixtures" / "tiny"),
    )
    _one_line_error(code, err, "pred_len")


def test_semicolon_csv_gets_a_delimiter_hint(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path)
    csv = _daily_csv(tmp_path / "semi.csv", sp500_bars)
    csv.write_text(csv.read_text().replace(",", ";"))
    code, _, err = _run(capsys, "run", str(path), "--data", str(csv))
    _one_line_error(code, err, "delimited by ';'")


# ------------------------------------------------------------------------------------------ calendars


def test_fx_hours_are_annualised_by_weekday_sessions(tmp_path, capsys):
    assert periods_per_year(_fx_hourly().index) == 6261.0  # 24 x 365.25 x 5/7, not 8766
    csv = tmp_path / "eurusd_1h.csv"
    _fx_hourly(n_weeks=2).to_csv(csv, index_label="timestamp")
    path = _yaml(tmp_path, dates={"start": None, "end": None}, data={"dataset": "sp500", "tz": "UTC"})
    code, out, err = _run(capsys, "run", str(path), "--data", str(csv))
    assert code == 0, err
    assert "6261 bars/yr" in out
    metrics = json.loads((_latest(tmp_path, "tiny-eurusd_1h") / "metrics.json").read_text())
    assert metrics["strategy"]["periods_per_year"] == 6261.0
    code, out, _ = _run(capsys, "run", str(path), "--data", str(csv), "--set", "data.periods_per_year=5000")
    assert code == 0 and "5000 bars/yr" in out  # the one override key


def test_tearsheet_periods_and_headline_cells_equal_metrics_json(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["output"]["tearsheet"] = True
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = _run(capsys, "run", str(path))
    assert code == 0, err
    run = _latest(tmp_path, "tiny")
    metrics = json.loads((run / "metrics.json").read_text())
    html = (run / "tearsheet.html").read_text()
    assert f"Periods/Year: {metrics['strategy']['periods_per_year']:.0f}" in html
    _assert_headline(html, metrics["strategy"], metrics["benchmark"])


def _cells(html: str, label: str) -> list[str]:
    """The (benchmark, strategy) cells of a quantstats metrics row."""
    row = re.search(r"<tr><td>" + re.escape(label) + r"</td>(.*?)</tr>", html)
    assert row, label
    return re.findall(r"<td>(.*?)</td>", row.group(1))


def _pct(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def _assert_headline(html: str, strat: dict, bench: dict) -> None:
    for label, key, read, tol in (
        ("Cumulative Return", "total_return", _pct, 0.0001),
        ("CAGR﹪", "cagr", _pct, 0.0001),
        ("Sharpe", "sharpe", float, 0.006),
        ("Max Drawdown", "max_drawdown", _pct, 0.0001),
    ):
        b, s = _cells(html, label)
        assert read(s) == pytest.approx(strat[key], abs=tol), label
        assert read(b) == pytest.approx(bench[key], abs=tol), label


def test_tearsheet_keeps_a_drawdown_that_starts_on_the_first_move_and_never_recovers(tmp_path):
    """The demo's shape: a flat first bar, a loss on the next, never back to the start (quantstats showed '-')."""
    index = pd.bdate_range("2015-01-02", "2018-12-31")
    rng = np.random.default_rng(1)
    bench = pd.Series(rng.normal(0.0004, 0.01, len(index)), index=index, name="Buy & hold")
    strat = pd.Series(rng.normal(-0.0004, 0.006, len(index)), index=index, name="Strategy")
    strat.iloc[0] = bench.iloc[0] = 0.0
    strat.iloc[1] = -0.02
    growth = (1 + strat).cumprod()
    assert (growth.iloc[1:] < 1).all()  # one drawdown from the first move to the end
    out = write_tearsheet(strat, benchmark=bench, output=tmp_path / "t.html", periods=252)
    html = out.read_text()
    for label in ("Max Drawdown", "Max DD Date", "Longest DD Days"):
        assert "-" != _cells(html, label)[1], label
    assert _cells(html, "Max DD Date")[1] == str(growth.idxmin().date())
    assert _cells(html, "Longest DD Days")[1] == str((index[-1] - index[1]).days + 1)
    # the EOY chart labels one year under each bar pair (matplotlib keeps text as <!-- ... --> comments)
    title = html.index("<!-- EOY Returns")
    eoy = html[html.rfind("<svg", 0, title) : html.index("</svg>", title)]
    assert re.findall(r"<!-- (\d{4}) -->", eoy) == ["2015", "2016", "2017", "2018"]


# ------------------------------------------------------------------------------------------ notes, warnings, hints


def test_warm_up_that_moves_the_start_is_stated(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path, dates={"start": "2015-01-02", "end": "2015-05-31"})
    csv = _daily_csv(tmp_path / "late.csv", sp500_bars, start="2015-01-02")
    code, out, err = _run(capsys, "run", str(path), "--data", str(csv))
    assert code == 0, err
    note = next(line for line in out.splitlines() if line.startswith("note: "))
    assert "trading starts 2015-02-18" in note and "dates.start 2015-01-02" in note and "lookback=32" in note
    manifest = json.loads((_latest(tmp_path, "tiny-late") / "manifest.json").read_text())
    assert manifest["trading_start"].startswith("2015-02-18") and "warm up" in manifest["trading_start_note"]


def test_gaps_missing_volume_and_ignored_columns_are_warned_and_recorded(tmp_path, sp500_bars, capsys):
    path = _yaml(tmp_path)
    csv = _daily_csv(tmp_path / "holey.csv", sp500_bars, drop=("2015-03-02", "2015-03-27"),
                     columns={"Adj Close": lambda b: b["close"] * 0.98})  # fmt: skip
    frame = pd.read_csv(csv).drop(columns=["volume"])
    frame.to_csv(csv, index=False)
    code, out, err = _run(capsys, "run", str(path), "--data", str(csv))
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert any("1 gap(s)" in w and "2015-02-27" in w and "2015-03-30" in w for w in warnings), warnings
    assert any("no volume column" in w for w in warnings), warnings
    assert any("['adj close'] are ignored" in w for w in warnings), warnings
    manifest = json.loads((_latest(tmp_path, "tiny-holey") / "manifest.json").read_text())
    kinds = {w["kind"]: w for w in manifest["data_warnings"]}
    assert kinds["gaps"]["count"] == 1 and kinds["gaps"]["first"].startswith("2015-02-27")
    assert set(kinds) == {"gaps", "no_volume", "ignored_columns"}


def test_fx_gap_of_48_hours_is_warned_but_weekends_are_not(tmp_path, capsys):
    from kronos_strategies.datacheck import find_gaps

    bars = _fx_hourly(n_weeks=3)
    assert find_gaps(bars.index) == []
    holey = bars[(bars.index < "2024-01-16 10:00") | (bars.index >= "2024-01-18 10:00")]
    gaps = find_gaps(holey.index)
    assert [(str(a), str(b)) for a, b in gaps] == [("2024-01-16 09:00:00", "2024-01-18 10:00:00")]


def test_unreachable_threshold_gets_a_no_trades_hint(tmp_path, capsys):
    path = _yaml(tmp_path)
    code, out, err = _run(capsys, "run", str(path), "--set", "strategy.params.enter=5")
    assert code == 0, err
    hint = [line for line in out.splitlines() if line.startswith("hint: ")]
    assert len(hint) == 1 and "no trades" in hint[0] and "strategy.params.enter" in hint[0]


def test_costs_eating_the_gross_pnl_get_a_hint(tmp_path, capsys):
    path = _yaml(tmp_path)
    code, out, err = _run(capsys, "run", str(path), "--set", "broker.commission=0.01")
    assert code == 0, err
    hint = [line for line in out.splitlines() if line.startswith("hint: ")]
    assert len(hint) == 1 and "costs" in hint[0] and "broker.commission" in hint[0]


def test_evaluate_reports_progress_while_baselines_run(tmp_path, sp500_bars, capsys):
    csv = _daily_csv(tmp_path / "bars.csv", sp500_bars, start="2014-01-01", end="2015-03-31")
    code, _, err = _run(capsys, "evaluate", "--csv", str(csv), "--model", "none", "--baselines", "random_walk,drift",
                        "--lookback", "64", "--pred-len", "3", "--sample-count", "4", "--stride", "20",
                        "--out", str(tmp_path / "ev"))  # fmt: skip
    assert code == 0, err
    assert "baseline 1/2 random_walk: fitting" in err and "baseline 2/2 drift: fitting" in err


def test_walkforward_summary_counts_fold_cache_forecasts_as_cached(tmp_path, capsys):
    finetune = dict(every="M", window=150, steps=2, batch_size=8, lookback=24, horizon=4, val_bars=40,
                    max_val_windows=8, progress=False, compare_base=False)  # fmt: skip
    path = _yaml(tmp_path, dates={"start": "2015-01-01", "end": "2015-02-28"})
    cfg = yaml.safe_load(path.read_text())
    cfg["finetune"] = finetune
    path.write_text(yaml.safe_dump(cfg))
    code, first, err = _run(capsys, "run", str(path))
    assert code == 0, err
    before = int(re.search(r"forecasts: (\d+) windows", first).group(1))
    assert f"{before} windows, {before} computed, 0 from cache" in first  # the folds forecast them this run
    # one more month: a new fold schedule (so the indicator's own cache misses), Jan + Feb from the fold caches
    code, again, err = _run(capsys, "run", str(path), "--set", "dates.end=2015-03-31")
    assert code == 0, err
    total = int(re.search(r"forecasts: (\d+) windows", again).group(1))
    assert total > before
    assert f"{total} windows, {total - before} computed, {before} from cache" in again


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        ("date", ("cannot be read as datetimes", "'not a date'", "file line 6")),
        ("duplicate", ("duplicate timestamp", "file line 6")),
        ("high_low", ("high < low", "file line 6")),
    ],
)
def test_error_positions_are_the_timestamp_and_the_file_line(tmp_path, sp500_bars, capsys, edit, needles):
    csv = _daily_csv(tmp_path / "bars.csv", sp500_bars, start="2015-01-01", end="2015-03-31")
    lines = csv.read_text().splitlines()
    cells = lines[5].split(",")  # file line 6
    if edit == "date":
        cells[0] = "not a date"
    elif edit == "duplicate":
        cells[0] = lines[4].split(",")[0]
    else:
        cells[2] = str(float(cells[3]) - 1)  # high below low
    lines[5] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    code, _, err = _run(capsys, "forecast", str(csv))
    _one_line_error(code, err, *needles)
    if edit == "high_low":
        assert cells[0] in err  # the row's timestamp


def test_zero_volume_bars_are_counted_with_the_first_date(sp500_bars):
    from kronos_strategies.datacheck import data_warnings
    from kronos_strategies.feeds import read_ohlcv

    raw = sp500_bars.loc["2015-01-01":"2015-03-31", ["open", "high", "low", "close", "volume"]].copy()
    raw.iloc[[7, 9, 30], raw.columns.get_loc("volume")] = 0.0
    found = {w.kind: w for w in data_warnings(read_ohlcv(raw), label="idx")}
    assert set(found) == {"zero_volume"}
    assert found["zero_volume"].count == 3 and found["zero_volume"].first == str(raw.index[7])
