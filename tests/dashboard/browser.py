"""Headless Debian Chromium driven by Selenium through the system chromium-driver (no downloaded browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")  # fmt: skip


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they cannot be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser = next(
        (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
    )
    driver = next(
        (p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).exists()), None
    )
    if browser is None or driver is None:
        return "no headless browser: apt-get install -y chromium chromium-driver (CI installs them)"
    return browser, driver


def start_chromium(browser: str, driver: str, width: int = 1400, height: int = 1000):  # noqa: ANN201
    """A headless Chromium WebDriver; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
