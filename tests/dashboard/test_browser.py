"""The dashboard in a real headless Chromium: runs table, run page, traversal, and a live paper session."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kronos_strategies.dashboard import DashboardSettings, create_app
from kronos_strategies.paper.session import PaperSession

from ..paper.helpers import ENV, Churn, fast_config, start_emulator, write_candles
from .browser import find_browser, start_chromium

pytestmark = pytest.mark.browser
FOUND = find_browser()
if isinstance(FOUND, str):
    pytest.skip(FOUND, allow_module_level=True)


@pytest.fixture(scope="module")
def driver():
    drv = start_chromium(*FOUND)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(autouse=True)
def _fresh_console(driver):  # noqa: ANN001
    """Each test sees only its own browser console messages."""
    driver.get_log("browser")


def wait_for(driver, condition, timeout: float = 20.0):  # noqa: ANN001, ANN201
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def js_errors(driver) -> list[str]:  # noqa: ANN001
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_runs_table_and_run_page_show_metrics_json_numbers(driver, app_factory, serve, runs_root):
    from selenium.webdriver.common.by import By

    metrics = json.loads((runs_root / "tiny" / "20250101-abcd" / "metrics.json").read_text())["strategy"]
    site = serve(app_factory())
    driver.get(site.url + "/")
    row = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-id="0/tiny/20250101-abcd"]'))
    cells = {
        td.get_attribute("data-key"): td.text for td in row.find_elements(By.CSS_SELECTOR, "td[data-key]")
    }
    assert cells["sharpe"] == f"{metrics['sharpe']:.2f}"
    assert (
        cells["cagr"] == f"{100 * metrics['cagr']:.2f}%"
        and cells["max_drawdown"] == f"{100 * metrics['max_drawdown']:.2f}%"
    )
    assert cells["trades"] == str(metrics["trades"]) and cells["asset"] == "S&P 500"
    errors = driver.find_elements(By.CSS_SELECTOR, "tr.error-row")
    assert any("half" in e.text and "not valid JSON" in e.text for e in errors)
    driver.find_element(By.CSS_SELECTOR, 'th[data-key="sharpe"]').click()  # ascending, missing values last
    ids = driver.execute_script("return [...document.querySelectorAll('tr[data-id]')].map(r => r.dataset.id)")
    sharpe = [c.text for c in driver.find_elements(By.CSS_SELECTOR, 'tr[data-id] td[data-key="sharpe"]')]
    numbers = [float(x) for x in sharpe if x != "–"]
    assert numbers == sorted(numbers) and sharpe[len(numbers) :] == ["–"] * (len(sharpe) - len(numbers))
    assert (
        len(ids) == 7
    )  # tiny/20250101-abcd, other, half, nometrics, garbage, wf, sweeps/grid (no latest, no escape)

    driver.find_element(By.CSS_SELECTOR, 'tr[data-id="0/tiny/20250101-abcd"] a').click()
    table = wait_for(
        driver,
        lambda d: (
            d.find_element(By.ID, "metrics").find_elements(By.TAG_NAME, "td")
            and d.find_element(By.ID, "metrics")
        ),
    )
    assert f"{metrics['sharpe']:.2f}" in table.text and f"{100 * metrics['total_return']:.2f}%" in table.text
    wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#equity .main-svg")
    )  # plotly drew the equity
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#price .main-svg"))
    assert driver.execute_script("return document.getElementById('equity').data.length") == 2
    assert not js_errors(driver)


def test_traversal_url_in_the_browser_is_404(driver, app_factory, serve):
    site = serve(app_factory())
    for path in ("/run/0/..%2F..%2Fescape", "/files/notes.md/0/tiny/20250101-abcd", "/run/0/escape"):
        driver.get(site.url + path)
        assert "no such" in driver.page_source and "outside the root" not in driver.page_source


def test_compare_draws_one_line_per_run(driver, app_factory, serve):
    site = serve(app_factory())
    driver.get(site.url + "/compare?run=0/tiny/20250101-abcd&run=0/other")
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const e = document.getElementById('equity'); return e.data && e.data.length"
        ),
    )
    assert driver.execute_script("return document.getElementById('equity').data.length") == 2


def test_live_session_page_shows_a_new_fill_without_reload(driver, serve, tmp_path: Path):
    """A paper session trades against the emulator while the page is open; the fill appears by polling."""
    from selenium.webdriver.common.by import By

    candles = write_candles(tmp_path / "c.csv", n=400, seed=1)
    emu = start_emulator(candles, start_index=100, bar_seconds=0.25)
    journal = tmp_path / "live.sqlite"
    session = PaperSession(fast_config(emu.url, journal, mode="paper", max_bars=24, warmup=5), Churn, env=ENV)
    worker = threading.Thread(target=session.run, daemon=True)
    try:
        site = serve(create_app(DashboardSettings(journals=[journal], refresh_seconds=0.3)))
        driver.get(site.url + "/session/0")  # opened before the session exists: no journal, no fill yet
        wait_for(driver, lambda d: "does not exist" in d.find_element(By.ID, "error").text)
        driver.execute_script("window.__stillTheSamePage = true;")
        worker.start()
        wait_for(driver, lambda d: d.find_element(By.ID, "status").text in ("running", "starting", "stopped"))
        wait_for(driver, lambda d: int(d.find_element(By.ID, "fill-count").text) > 0, timeout=60)
        rows = driver.find_elements(By.CSS_SELECTOR, "#fills tbody tr")
        assert rows and rows[0].find_elements(By.TAG_NAME, "td")[1].text in ("buy", "sell")
        assert driver.execute_script("return window.__stillTheSamePage === true"), "the page was reloaded"
        wait_for(
            driver,
            lambda d: d.execute_script(
                "const e = document.getElementById('equity'); return e.data && e.data[0].x.length > 2"
            ),
        )
        worker.join(timeout=60)
        wait_for(
            driver, lambda d: d.find_element(By.ID, "status").text == "stopped"
        )  # the journal's stop event
        assert not js_errors(driver)
    finally:
        worker.join(timeout=60)
        emu.stop()


def test_broken_sweep_and_session_pages_render_without_script_errors(driver, app_factory, serve):
    from selenium.webdriver.common.by import By

    site = serve(app_factory())
    driver.get(site.url + "/run/0/half")
    wait_for(driver, lambda d: "not valid JSON" in d.find_element(By.ID, "error").text)
    driver.get(site.url + "/run/0/sweeps/grid")
    wait_for(driver, lambda d: '"best"' in d.find_element(By.ID, "extra").text)
    assert "results.csv" in driver.find_element(By.ID, "links").text
    assert "S&P 500" in driver.find_element(By.ID, "sweep-results").text
    driver.get(site.url + "/sessions")
    row = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sessions tbody tr td + td"))
    assert row[0].text == "BTC/USDT"
    driver.get(site.url + "/session/0")
    wait_for(driver, lambda d: d.find_element(By.ID, "fill-count").text == "3")
    assert "fold 2: ValueError: boom" in driver.find_element(By.ID, "errors").text
    assert "c-open" in driver.find_element(By.ID, "open-orders").text
    assert "records no forecasts" in driver.find_element(By.ID, "forecasts").text
    assert not js_errors(driver)


def test_a_journaled_forecast_is_drawn_as_a_fan(driver, serve, tmp_path):
    """The latest row per symbol of the journal's ``forecasts`` table is drawn as a fan."""
    import sqlite3

    from .conftest import write_journal

    journal = write_journal(tmp_path / "fc.sqlite")
    with sqlite3.connect(journal) as db:
        db.execute(
            "INSERT INTO forecasts VALUES (1, 'BTC/USDT', ?, ?)",
            ('{"0.1": [99, 98], "0.9": [101, 103]}', "[100, 100.5]"),
        )
        db.execute(
            "INSERT INTO forecasts VALUES (2, 'BTC/USDT', ?, ?)",
            ('{"0.1": [97, 96, 95], "0.9": [104, 105, 106]}', "[100, 101, 102]"),
        )
    site = serve(create_app(DashboardSettings(journals=[journal])))
    driver.get(site.url + "/session/0")
    traces = wait_for(
        driver,
        lambda d: d.execute_script(
            "const e = document.getElementById('fan-0'); return e && e.data && e.data.map(t => t.y)"
        ),
    )
    assert traces == [[97, 96, 95], [104, 105, 106], [100, 101, 102]]
    assert not js_errors(driver)
