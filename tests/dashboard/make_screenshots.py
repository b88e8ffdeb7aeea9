"""README screenshots of every dashboard page, taken by the same headless Chromium as the browser tests.

    .venv/bin/python -m tests.dashboard.make_screenshots --runs runs [--out docs/images]

Serves the dashboard over the given runs folder on 127.0.0.1, plus a paper session (the test suite's
``Churn`` strategy against the exchange emulator) that trades while its page is captured.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

from kronos_strategies.dashboard import DashboardSettings, create_app
from kronos_strategies.dashboard.runs import discover
from kronos_strategies.paper.session import PaperSession

from ..paper.helpers import ENV, Churn, fast_config, start_emulator, write_candles
from .browser import find_browser, start_chromium


def _settle(driver, css: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    """Wait until ``css`` matches, then let plotly finish drawing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    time.sleep(1.0)


def _shoot(driver, url: str, css: str, out: Path, height: int = 1000) -> Path:  # noqa: ANN001
    driver.set_window_size(1400, height)
    driver.get(url)
    _settle(driver, css)
    driver.save_screenshot(str(out))
    print(f"wrote {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", required=True, help="runs folder with at least two backtests")
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    found = find_browser()
    if isinstance(found, str):
        raise SystemExit(found)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [i for i in discover([Path(args.runs)])]
    with tempfile.TemporaryDirectory() as tmp:
        candles = write_candles(Path(tmp) / "c.csv", n=400, seed=3)
        emu = start_emulator(candles, start_index=100, bar_seconds=0.5)
        journal = Path(tmp) / "btcusdt_paper.sqlite"
        session = PaperSession(
            fast_config(emu.url, journal, mode="paper", max_bars=80, warmup=20), Churn, env=ENV
        )
        worker = threading.Thread(target=session.run, daemon=True)
        app = create_app(
            DashboardSettings(run_roots=[Path(args.runs)], journals=[journal], refresh_seconds=1.0)
        )
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        driver = start_chromium(*found)
        try:
            worker.start()
            _shoot(driver, base + "/", "tr[data-id]", out / "dashboard_runs.png", height=420)
            _shoot(driver, f"{base}/run/{ids[0]}", "#price .main-svg", out / "dashboard_run.png", height=1250)
            query = "&".join(f"run={i}" for i in ids[:3])
            _shoot(
                driver,
                f"{base}/compare?{query}",
                "#equity .main-svg",
                out / "dashboard_compare.png",
                height=700,
            )
            time.sleep(15)  # let the session trade for a while
            _shoot(
                driver,
                base + "/session/0",
                "#fills tbody tr td + td",
                out / "dashboard_session.png",
                height=1100,
            )
        finally:
            driver.quit()
            server.shutdown()
            worker.join(timeout=60)
            emu.stop()


if __name__ == "__main__":
    main()
