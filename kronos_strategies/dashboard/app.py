"""The Flask app: HTML pages that draw from a read-only JSON API, behind loopback/token checks.

Everything here is GET-only: no route changes a file, a journal or a setting. Runs are addressed by
ids found by :func:`runs.discover`, and files only by name inside a found run, so a URL cannot name a
path outside the folders the dashboard was given.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, send_file

from . import runs, series, sessions

TOKEN_COOKIE = "kronos_bt_dashboard"
SERVED_FILES = ("tearsheet.html", "chart.png", "heatmap.png", "walkforward_skill.png", "results.csv",
                "walkforward.md", "signals.csv", "trades.csv")  # fmt: skip
DISCOVERY_TTL = 2.0  # seconds a folder scan is reused between requests


@dataclass
class DashboardSettings:
    """What the app serves and who may see it."""

    run_roots: list[Path] = field(default_factory=list)
    journals: list[Path] = field(default_factory=list)
    token: str | None = None  # required on every request when set (remote use)
    allow_remote: bool = False  # False: requests must name a loopback Host (blocks DNS rebinding)
    refresh_seconds: float = 2.0


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a Host header ('[::1]:8000' → '::1')."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _RunIndex:
    """The discovered runs, rescanned at most every DISCOVERY_TTL seconds."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self._at = -1e9
        self._refs: dict[str, runs.RunRef] = {}

    def refs(self, max_age: float = DISCOVERY_TTL) -> dict[str, runs.RunRef]:
        """The runs found by a scan at most ``max_age`` seconds old."""
        if time.monotonic() - self._at > max_age:
            self._refs, self._at = runs.discover(self.roots), time.monotonic()
        return self._refs

    def get(self, run_id: str) -> runs.RunRef:
        """The run with this id (a run written since the last scan is found too), else 404."""
        ref = self.refs().get(run_id) or self.refs(max_age=0.5).get(run_id)
        if ref is None:
            abort(404, description="no such run")
        return ref


def create_app(settings: DashboardSettings) -> Flask:
    """The dashboard app for ``settings``."""
    app = Flask(__name__)
    index = _RunIndex([Path(r).resolve() for r in settings.run_roots])
    journals = [Path(j) for j in settings.journals]
    _add_guards(app, settings)
    _add_pages(app, index, journals, {"refresh_ms": int(settings.refresh_seconds * 1000)})
    _add_run_api(app, index)
    _add_session_api(app, journals)
    return app


def _add_guards(app: Flask, settings: DashboardSettings) -> None:
    """Read-only methods, loopback Host, token, security headers and JSON errors."""

    @app.before_request
    def _guard() -> Response | None:
        if request.method not in ("GET", "HEAD"):
            abort(405, description="the dashboard is read-only")
        if not settings.allow_remote and not is_loopback(_host_name(request.host)):
            abort(403, description="this dashboard only answers on a loopback address")
        if settings.token is None:
            return None
        given = request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:]
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            abort(401, description="a valid token is required")
        if "token" in request.args:  # keep it in an HttpOnly cookie, out of the address bar and history
            rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
            resp = redirect(request.path + (f"?{rest}" if rest else ""), code=303)
            resp.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict")
            return resp
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'")  # fmt: skip
        if request.path.startswith("/api/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    def _error(exc: Any) -> tuple[Response, int]:
        return jsonify(error=getattr(exc, "description", str(exc))), exc.code


def _add_pages(app: Flask, index: _RunIndex, journals: list[Path], page: dict[str, Any]) -> None:
    """HTML shells; their script draws from the API."""

    @app.get("/")
    def runs_page() -> str:
        return render_template("runs.html", **page)

    @app.get("/run/<path:run_id>")
    def run_page(run_id: str) -> str:
        ref = index.get(run_id)
        return render_template("run.html", run_id=ref.run_id, **page)

    @app.get("/compare")
    def compare_page() -> str:
        return render_template("compare.html", **page)

    @app.get("/sessions")
    def sessions_page() -> str:
        return render_template("sessions.html", **page)

    @app.get("/session/<int:number>")
    def session_page(number: int) -> str:
        if not 0 <= number < len(journals):
            abort(404, description="no such session")
        return render_template("session.html", number=number, name=journals[number].name, **page)

    @app.get("/static/plotly.min.js")
    def plotly_js() -> Response:
        return send_file(_plotly_js(), mimetype="text/javascript", max_age=86400)


def _add_run_api(app: Flask, index: _RunIndex) -> None:
    """Runs: table rows, one run's detail and series, comparison, and whitelisted report files."""

    @app.get("/api/runs")
    def api_runs() -> Response:
        return jsonify(runs=[vars(runs.summarize(ref)) for ref in index.refs().values()],
                       roots=[str(i) for i in range(len(index.roots))])  # fmt: skip

    @app.get("/api/run/<path:run_id>")
    def api_run(run_id: str) -> Response:
        return jsonify(runs.run_detail(index.get(run_id)))

    @app.get("/api/series/<path:run_id>")
    def api_series(run_id: str) -> Response:
        ref = index.get(run_id)
        try:
            return jsonify(series.run_series(ref))
        except (ValueError, OSError) as exc:
            return jsonify(error=str(exc), notes=[str(exc)])

    @app.get("/api/compare")
    def api_compare() -> Response:
        ids = request.args.getlist("run")
        if len(ids) < 2:
            abort(400, description="compare needs at least two ?run= ids")
        out = []
        for run_id in ids:
            ref = index.get(run_id)
            row = vars(runs.summarize(ref))
            try:
                row["equity"] = series.run_series(ref).get("equity")
            except (ValueError, OSError) as exc:
                row["equity"], row["error"] = None, str(exc)
            out.append(row)
        return jsonify(runs=out)

    @app.get("/files/<name>/<path:run_id>")
    def run_file(name: str, run_id: str) -> Response:
        ref = index.get(run_id)
        path = runs.safe_file(ref, name) if name in SERVED_FILES else None
        if path is None:
            abort(404, description="no such file in this run")
        resp = send_file(path, max_age=0)
        if name.endswith(".html"):  # a report page: no scripts of its own may reach this origin
            resp.headers["Content-Security-Policy"] = "sandbox; default-src 'self' 'unsafe-inline' data:"
            resp.headers["X-Frame-Options"] = "SAMEORIGIN"
        return resp


def _add_session_api(app: Flask, journals: list[Path]) -> None:
    """Paper sessions: the list and one session's snapshot."""

    @app.get("/api/sessions")
    def api_sessions() -> Response:
        out = []
        for number, path in enumerate(journals):
            row: dict[str, Any] = {"number": number, "name": path.name}
            try:
                snap = sessions.read_session(path)
                row |= {"status": snap["status"], "symbol": snap["symbol"], "last_bar": snap["last_bar"],
                        "fills": snap["fill_count"], "mode": snap["settings"].get("mode")}  # fmt: skip
            except sessions.JournalUnreadable as exc:
                row |= {"status": "unreadable", "error": str(exc)}
            out.append(row)
        return jsonify(sessions=out)

    @app.get("/api/session/<int:number>")
    def api_session(number: int) -> Response:
        if not 0 <= number < len(journals):
            abort(404, description="no such session")
        try:
            return jsonify(sessions.read_session(journals[number]) | {"name": journals[number].name})
        except sessions.JournalUnreadable as exc:
            return jsonify(error=str(exc), status="unreadable", name=journals[number].name)


def _plotly_js() -> Path:
    """plotly.js as shipped inside the installed ``plotly`` package (served locally, never from a CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        abort(404, description="plotly.min.js is missing from the plotly package")
    return path
