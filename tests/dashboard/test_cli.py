"""``kronos-bt dashboard`` as a process: it serves the API, and a remote token never reaches its output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-never-printed-0123456789"


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "kronos_strategies.cli", "dashboard", "--port", "0", *args],
                            cwd=ROOT, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    line = proc.stdout.readline()
    match = re.search(r":(\d+)/", line)
    assert match, line
    return proc, int(match.group(1))


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_cli_serves_runs_and_keeps_the_token_out_of_its_output(runs_root):
    proc, port = _start(["--runs", str(runs_root), "--host", "0.0.0.0", "--allow-remote"],
                        {"KRONOS_BT_DASHBOARD_TOKEN": TOKEN})  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/api/runs")[0] == 401
        status, body = _get(
            f"{base}/api/runs?token={TOKEN}&x=1"
        )  # a redirect that sets the cookie, then 401:
        assert status == 401  # urllib keeps no cookies; a browser does
        request = urllib.request.Request(f"{base}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, body = resp.status, resp.read()
        assert status == 200 and "0/tiny/20250101-abcd" in {r["id"] for r in json.loads(body)["runs"]}
        time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "/api/runs" in out, "requests are logged ..."
    assert TOKEN not in out, "... without the token"


@pytest.mark.slow  # loopback-only stays in the default tier at the app level (test_api.py); one CLI start too
def test_cli_default_is_loopback(runs_root):
    proc, port = _start(["--runs", str(runs_root)], {})
    try:
        status, body = _get(f"http://127.0.0.1:{port}/api/runs")
        assert status == 200 and json.loads(body)["runs"]
        assert _get(f"http://127.0.0.1:{port}/api/run/0/..%2F..%2Fetc")[0] == 404
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
