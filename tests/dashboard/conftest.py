"""Dashboard fixtures: a real tiny backtest run, broken run folders, paper journals, a served app."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from kronos_strategies.dashboard import DashboardSettings, create_app  # noqa: E402
from kronos_strategies.paper.journal import Journal  # noqa: E402

from ..strategies.conftest import tiny_config  # noqa: E402

SECRET_IN_MANIFEST = "hunter2-dashboard-must-not-show"


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real backtest (tiny model, 5 months of S&P 500) written by the runner."""
    from kronos_strategies.runner import run_backtest

    tmp = tmp_path_factory.mktemp("tinyrun")
    cfg = tiny_config(tmp)
    cfg["output"]["dir"] = str(tmp / "out")
    run_backtest(cfg)
    return tmp / "out"


@pytest.fixture
def runs_root(tmp_path: Path, tiny_run_dir: Path) -> Path:
    """A runs folder in issue 12's layout plus every kind of broken folder and link.

    runs/tiny/20250101-abcd/ (the real run) · runs/tiny/latest -> 20250101-abcd · runs/other/ (the same run,
    with a credential in its manifest) · runs/half/ (metrics.json cut short) · runs/nometrics/ (manifest only)
    · runs/garbage/ (binary metrics.json) · runs/wf/ (+ walkforward.json) · runs/sweeps/grid/ (sweep.json)
    · runs/escape -> a run folder outside the root.
    """
    root = tmp_path / "runs"
    real = root / "tiny" / "20250101-abcd"
    shutil.copytree(tiny_run_dir, real)
    (root / "tiny" / "latest").symlink_to("20250101-abcd", target_is_directory=True)
    other = root / "other"
    shutil.copytree(tiny_run_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name"] = "other"
    manifest["config"]["paper"] = {"api_key": SECRET_IN_MANIFEST, "key_env": "KRONOS_BT_API_KEY"}
    (other / "manifest.json").write_text(json.dumps(manifest))
    half = root / "half"
    shutil.copytree(tiny_run_dir, half)
    text = (half / "metrics.json").read_text()
    (half / "metrics.json").write_text(text[: len(text) // 2])
    (root / "nometrics").mkdir()
    (root / "nometrics" / "manifest.json").write_text((tiny_run_dir / "manifest.json").read_text())
    (root / "garbage").mkdir()
    (root / "garbage" / "metrics.json").write_bytes(b"\xff\xfe\x00junk")
    wf = root / "wf"
    shutil.copytree(tiny_run_dir, wf)
    (wf / "walkforward.json").write_text(json.dumps({"pooled": {"crps": 0.01}, "verdict": "no gain"}))
    sweep = root / "sweeps" / "grid"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "name": "grid",
                "runs": 4,
                "best": {
                    "asset": "S&P 500",
                    "sharpe": 1.25,
                    "cagr": 0.08,
                    "max_drawdown": -0.12,
                    "trades": 31,
                    "run_id": "ab12",
                },
            }
        )
    )
    (sweep / "results.csv").write_text("rank,asset,enter,sharpe\n1,S&P 500,0.2,1.25\n2,NASDAQ,0.2,1.0\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.json").write_text(json.dumps({"strategy": {"sharpe": 42.0}}))
    (outside / "secret.txt").write_text("outside the root")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (real / "notes.md").symlink_to(outside / "secret.txt")  # a file link that leaves the root
    return root


def write_journal(path: Path, *, fills: int = 3) -> Path:
    """A journal written by the project's own Journal class: bars, equity, intents, orders, fills, events."""
    journal = Journal(path)
    journal.set_meta("market", "[('symbol', 'BTC/USDT')]")
    journal.set_settings({"symbol": "BTC/USDT", "timeframe": "1m", "mode": "paper", "api_key": "NOPE-1234",
                          "key_env": "KRONOS_BT_API_KEY"})  # fmt: skip
    t0 = 1_704_067_200_000
    for i in range(10):
        close = 100.0 + i
        journal.record_bar(t0 + i * 60_000, (close, close + 1, close - 1, close, 5.0), cash=1000.0 - i,
                           value=1000.0 + 2 * i, size=0.5, price=99.5)  # fmt: skip
    for i in range(fills):
        journal.record_intent(f"c{i}", t0, "buy", "market", 0.5, None, status="closed")
        journal.record_order(f"c{i}", {"id": 900 + i, "status": "closed", "amount": 0.5, "filled": 0.5})
        journal.record_fill(
            str(700 + i), f"c{i}", str(900 + i), t0 + i * 60_000, "buy", 0.5, 101.25 + i, 0.05, "USDT"
        )
    journal.record_intent("c-open", t0 + 540_000, "sell", "limit", 0.25, 123.5, status="open")
    journal.record_order(
        "c-open", {"id": 999, "status": "open", "amount": 0.25, "filled": 0.0, "price": 123.5}
    )
    journal.event("start", "session started")
    journal.event("model_swap", '{"fold": 1}')
    journal.event("refit_failed", "fold 2: ValueError: boom")
    journal.close()
    return path


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return write_journal(tmp_path / "session.sqlite")


@pytest.fixture
def app_factory(runs_root: Path, journal_path: Path):
    """``app_factory(**settings)``: a Flask app over ``runs_root`` and ``journal_path``."""

    def make(**kwargs: object):
        kwargs.setdefault("run_roots", [runs_root])
        kwargs.setdefault("journals", [journal_path])
        return create_app(DashboardSettings(**kwargs))  # type: ignore[arg-type]

    return make


@pytest.fixture
def client(app_factory):
    return app_factory().test_client()


class Served:
    """An app served on 127.0.0.1 (free port) by werkzeug in a thread."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator:
    """``serve(app)`` → Served; all stopped after the test."""
    started: list[Served] = []

    def start(app) -> Served:  # noqa: ANN001
        started.append(Served(app))
        return started[-1]

    yield start
    for s in started:
        s.stop()
