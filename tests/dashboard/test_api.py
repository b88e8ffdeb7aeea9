"""JSON API of the dashboard: content read from real run folders and journals, errors, traversal, safety."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import SECRET_IN_MANIFEST, write_journal


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["strategy"]


def test_runs_table_rows_carry_metrics_json_numbers(client, runs_root):
    rows = {r["id"]: r for r in client.get("/api/runs").get_json()["runs"]}
    expected = _metrics(runs_root / "tiny" / "20250101-abcd")
    good = rows["0/tiny/20250101-abcd"]
    assert good["error"] is None and good["kind"] == "backtest" and good["asset"] == "S&P 500"
    assert good["sharpe"] == expected["sharpe"] and good["cagr"] == expected["cagr"]
    assert good["max_drawdown"] == expected["max_drawdown"] and good["trades"] == expected["trades"]
    assert good["start"] == "2015-01-02" and good["end"] == "2015-05-29" and good["model"] == "tiny/predictor"
    assert "0/tiny/latest" not in rows, "the latest link is the same run: listed once"
    assert not any("escape" in i for i in rows), "a link out of the root is not followed"


def test_broken_folders_are_error_rows(client):
    rows = {r["id"]: r for r in client.get("/api/runs").get_json()["runs"]}
    assert "not valid JSON" in rows["0/half"]["error"]
    assert "metrics.json is missing" in rows["0/nometrics"]["error"] and rows["0/nometrics"]["name"] == "tiny"
    assert "not valid JSON" in rows["0/garbage"]["error"]
    assert rows["0/other"]["error"] is None


def test_walk_forward_and_sweep_folders_are_typed(client):
    rows = {r["id"]: r for r in client.get("/api/runs").get_json()["runs"]}
    assert rows["0/wf"]["kind"] == "walk-forward" and rows["0/wf"]["error"] is None
    sweep = rows["0/sweeps/grid"]
    assert (sweep["kind"], sweep["name"], sweep["sharpe"], sweep["trades"]) == ("sweep", "grid", 1.25, 31)
    assert sweep["asset"] == "S&P 500, NASDAQ"  # the universe, from results.csv
    detail = client.get("/api/run/0/sweeps/grid").get_json()
    assert detail["sweep"]["runs"] == 4 and "results.csv" in detail["summary"]["files"]
    assert detail["sweep_results"][0] == {"rank": 1, "asset": "S&P 500", "enter": 0.2, "sharpe": 1.25}
    assert client.get("/files/results.csv/0/sweeps/grid").data.startswith(b"rank,asset")
    assert client.get("/api/run/0/wf").get_json()["walkforward"]["verdict"] == "no gain"


def test_run_detail_redacts_credentials(client, runs_root):
    resp = client.get("/api/run/0/other")
    assert resp.status_code == 200
    assert SECRET_IN_MANIFEST not in resp.get_data(as_text=True)
    detail = resp.get_json()
    assert detail["manifest"]["config"]["paper"] == {"api_key": "***", "key_env": "KRONOS_BT_API_KEY"}
    assert detail["metrics"]["strategy"] == _metrics(runs_root / "other")


def test_series_rebuilds_the_equity_that_metrics_json_reports(client, runs_root):
    ser = client.get("/api/series/0/tiny/20250101-abcd").get_json()
    metrics = _metrics(runs_root / "tiny" / "20250101-abcd")
    eq = ser["equity"]
    assert len(eq["strategy"]) == metrics["bars"] == len(ser["close"]["value"])
    assert eq["strategy"][-1] == pytest.approx(1.0 + metrics["total_return"], rel=1e-9)
    assert min(eq["drawdown"]) == pytest.approx(metrics["max_drawdown"], rel=1e-6)
    bench = json.loads((runs_root / "tiny" / "20250101-abcd" / "metrics.json").read_text())["benchmark"]
    assert eq["benchmark"][-1] == pytest.approx(1.0 + bench["total_return"], rel=1e-9)
    trades = (runs_root / "tiny" / "20250101-abcd" / "trades.csv").read_text().strip().splitlines()
    assert len(ser["trades"]["time"]) == len(trades) - 1
    assert ser["band"]["horizon"] == 4 and len(ser["band"]["lower"]) == len(ser["band"]["upper"])


def test_compare_returns_each_runs_equity(client):
    data = client.get("/api/compare?run=0/tiny/20250101-abcd&run=0/other").get_json()
    assert [r["id"] for r in data["runs"]] == ["0/tiny/20250101-abcd", "0/other"]
    assert all(len(r["equity"]["strategy"]) > 10 for r in data["runs"])
    assert client.get("/api/compare?run=0/other").status_code == 400
    assert client.get("/api/compare?run=0/other&run=0/../x").status_code == 404


@pytest.mark.parametrize("url", [
    "/api/run/0/../../etc", "/api/run/0/%2e%2e/%2e%2e/etc/passwd", "/api/run/..%2F..%2Fetc", "/api/run/0/escape",
    "/api/series/0/tiny/../../../outside", "/run/0/..%2Fescape", "/api/run/7/tiny", "/api/run//etc/passwd",
    "/files/manifest.json/0/tiny/20250101-abcd", "/files/..%2Fmetrics.json/0/tiny/20250101-abcd",
    "/files/notes.md/0/tiny/20250101-abcd", "/files/tearsheet.html/0/escape", "/api/session/5", "/session/-1",
])  # fmt: skip
def test_traversal_and_unknown_ids_are_404(client, url):
    resp = client.get(url, follow_redirects=True)  # '//' is first merged by a redirect
    assert resp.status_code in (403, 404), url
    assert "outside the root" not in resp.get_data(as_text=True)


def test_report_files_are_served_sandboxed(client, runs_root):
    resp = client.get("/files/tearsheet.html/0/tiny/20250101-abcd")
    assert resp.status_code == 200 and resp.data == (runs_root / "other" / "tearsheet.html").read_bytes()
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
    assert client.get("/files/chart.png/0/other").data[:4] == b"\x89PNG"


def test_read_only_and_loopback_only(client):
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/api/runs").status_code == 405
    assert client.get("/api/runs", headers={"Host": "evil.example:8050"}).status_code == 403
    assert client.get("/api/runs", headers={"Host": "localhost:8050"}).status_code == 200
    assert client.get("/api/runs", headers={"Host": "[::1]:8050"}).status_code == 200


def test_token_is_required_when_set(app_factory):
    token = "t0k3n-abcdefghijklmnop"
    client = app_factory(token=token, allow_remote=True).test_client()
    assert client.get("/api/runs").status_code == 401
    assert client.get("/api/runs?token=wrong").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    first = client.get(f"/compare?run=a&token={token}&run=b")
    assert first.status_code == 303 and first.headers["Location"] == "/compare?run=a&run=b"
    assert "HttpOnly" in first.headers["Set-Cookie"] and token not in first.get_data(as_text=True)
    assert client.get("/api/runs").status_code == 200, "the token cookie set by ?token= authenticates"
    remote = {"Host": "203.0.113.5:8050", "Authorization": f"Bearer {token}"}
    assert client.get("/api/runs", headers=remote).status_code == 200, "--allow-remote answers any Host"


def test_pages_and_local_plotly(client):
    for url in (
        "/",
        "/run/0/tiny/20250101-abcd",
        "/compare?run=0/other&run=0/half",
        "/sessions",
        "/session/0",
    ):
        resp = client.get(url)
        assert resp.status_code == 200 and b"/static/plotly.min.js" in resp.data, url
        assert b"cdn" not in resp.data.lower()
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.data) > 1_000_000 and b"plotly" in js.data[:2000].lower()


def test_session_snapshot_reads_the_journal(client, journal_path):
    s = client.get("/api/session/0").get_json()
    assert s["symbol"] == "BTC/USDT" and s["settings"].get("api_key", "***") == "***"
    assert "NOPE-1234" not in json.dumps(s)
    assert s["fill_count"] == 3 and [f["price"] for f in s["fills"]] == [103.25, 102.25, 101.25]
    assert s["last_bar"]["bar_ts"] == 1_704_067_200_000 + 9 * 60_000 and s["last_bar"]["close"] == 109.0
    assert s["position"] == {"bar_ts": 1_704_067_200_000 + 9 * 60_000, "size": 0.5, "price": 99.5}
    assert [o["cid"] for o in s["open_orders"]] == ["c-open"] and s["open_orders"][0]["exchange"][0][
        "order_id"
    ] == "999"
    assert s["equity"]["value"] == [1000.0 + 2 * i for i in range(10)] and s["equity"]["close"][0] == 100.0
    assert [e["kind"] for e in s["refits"]] == ["refit_failed", "model_swap"]
    assert [e["message"] for e in s["errors"]] == ["fold 2: ValueError: boom"]
    listing = client.get("/api/sessions").get_json()["sessions"]
    assert listing == [{"number": 0, "name": "session.sqlite", "status": s["status"], "symbol": "BTC/USDT",
                        "last_bar": s["last_bar"], "fills": 3, "mode": "paper"}]  # fmt: skip


def test_journal_is_never_written(client, journal_path):
    before = journal_path.read_bytes()
    for _ in range(3):
        client.get("/api/session/0")
    assert journal_path.read_bytes() == before
    assert not Path(f"{journal_path}-wal").exists() or Path(f"{journal_path}-wal").stat().st_size == 0


def test_unknown_or_missing_tables_and_columns_do_not_crash(app_factory, tmp_path):
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:  # an older journal: no orders table, fewer fill columns, an extra table
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE fills (trade_id TEXT, ts INTEGER, side TEXT, amount REAL, price REAL)")
        db.execute("INSERT INTO fills VALUES ('1', 5, 'buy', 1.0, 10.0)")
        db.execute("CREATE TABLE orders_v2 (order_id TEXT, exchange_ids TEXT, secret TEXT)")
        db.execute("INSERT INTO meta VALUES ('settings', 'not json')")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    client = app_factory(journals=[old, garbage, tmp_path / "missing.sqlite"]).test_client()
    s = client.get("/api/session/0").get_json()
    assert (
        s["fill_count"] == 1
        and s["fills"][0]["price"] == 10.0
        and s["open_orders"] == []
        and s["equity"]["value"] == []
    )
    assert "orders_v2" in s["tables"]
    assert "cannot be read" in client.get("/api/session/1").get_json()["error"]
    assert "does not exist" in client.get("/api/session/2").get_json()["error"]
    statuses = [r["status"] for r in client.get("/api/sessions").get_json()["sessions"]]
    assert statuses[1:] == ["unreadable", "unreadable"]


def test_reading_while_the_session_writes_sees_committed_rows_only(client, journal_path):
    writer = sqlite3.connect(journal_path, isolation_level=None, timeout=0.1)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO fills(trade_id, ts, side, amount, price) VALUES ('800', 1, 'sell', 0.5, 99.0)"
    )
    assert client.get("/api/session/0").get_json()["fill_count"] == 3  # the open write is not seen, no wait
    writer.execute("COMMIT")
    reader = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM fills").fetchone()  # a reader holding a snapshot ...
    writer.execute(
        "INSERT INTO events(ts, kind, message) VALUES (1, 'x', 'y')"
    )  # ... never blocks the writer
    reader.execute("COMMIT")
    assert client.get("/api/session/0").get_json()["fill_count"] == 4
    writer.close()
    reader.close()


def test_cli_refuses_remote_without_token_and_bad_folders(tmp_path, capsys, monkeypatch):
    from kronos_strategies.cli import main

    monkeypatch.delenv("KRONOS_BT_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", "--runs", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["dashboard", "--runs", str(tmp_path), "--host", "0.0.0.0", "--allow-remote"]) == 2
    assert "KRONOS_BT_DASHBOARD_TOKEN" in capsys.readouterr().err
    assert main(["dashboard", "--runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err
    assert main(["dashboard", "--runs", str(tmp_path), "--journal", str(tmp_path / "x" / "j.sqlite")]) == 2


def test_write_journal_helper_is_the_projects_schema(tmp_path):
    path = write_journal(tmp_path / "j.sqlite", fills=1)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 1
