"""``kronos-bt dashboard``: serve the local read-only web dashboard of runs and paper sessions."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kronos_strategies.errors import ConfigError

TOKEN_ENV = "KRONOS_BT_DASHBOARD_TOKEN"
MIN_TOKEN = 16


def dashboard_settings(args: argparse.Namespace):  # noqa: ANN201 - DashboardSettings, imported lazily
    """Check the arguments and build the app settings; bad input raises ConfigError naming the fix."""
    from kronos_strategies.dashboard.app import DashboardSettings, is_loopback

    roots = [Path(r) for r in (args.runs or ["runs"])]
    for root in roots:
        if not root.is_dir():
            raise ConfigError(
                f"--runs {root}: no such folder; pass the folder your backtests write to (e.g. runs)"
            )
    journals = [Path(j) for j in (args.journal or [])]
    for journal in journals:
        if not journal.parent.is_dir():
            raise ConfigError(
                f"--journal {journal}: folder {journal.parent} does not exist; pass a paper journal file"
            )
    token = None
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise ConfigError(
                f"refusing to serve on non-loopback host {args.host!r}: add --allow-remote and set a token "
                f"in ${args.token_env}, or use --host 127.0.0.1"
            )
        token = os.environ.get(args.token_env) or ""
        if len(token) < MIN_TOKEN:
            raise ConfigError(
                f"--allow-remote needs a token of at least {MIN_TOKEN} characters in ${args.token_env} "
                "(e.g. export it from `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
            )
    if args.refresh <= 0:
        raise ConfigError(f"--refresh must be a positive number of seconds, got {args.refresh}")
    return DashboardSettings(run_roots=roots, journals=journals, token=token, allow_remote=args.allow_remote,
                             refresh_seconds=args.refresh)  # fmt: skip


def dashboard_handler(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietQueryHandler(WSGIRequestHandler):
        """Access log lines without the query string (it may carry the token)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            self.log("info", '"%s %s" %s', self.command, self.path.split("?", 1)[0], code)

    from kronos_strategies.dashboard import create_app

    settings = dashboard_settings(args)
    try:
        server = make_server(
            args.host, args.port, create_app(settings), threaded=True, request_handler=QuietQueryHandler
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port"
        ) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    where = ", ".join(str(r) for r in settings.run_roots)
    print(f"kronos-bt: dashboard on http://{host}:{server.server_port}/ (runs under {where}; "
          f"{len(settings.journals)} journal(s)); Ctrl-C stops it", flush=True)  # fmt: skip
    if settings.token is not None:
        print(
            f"kronos-bt: remote access needs ?token=<the value of ${args.token_env}> once per browser",
            flush=True,
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dashboard``."""
    p = subparsers.add_parser("dashboard", help="local read-only web dashboard of runs and paper sessions",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)  # fmt: skip
    p.add_argument(
        "--runs", action="extend", nargs="+", metavar="DIR", help="folders searched for runs (default: runs)"
    )
    p.add_argument("--journal", action="extend", nargs="+", metavar="FILE", help="paper session journals")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; non-loopback needs --allow-remote")
    p.add_argument("--port", type=int, default=8050, help="0 picks a free port")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (token required)")
    p.add_argument("--token-env", default=TOKEN_ENV, help="environment variable holding the access token")
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between live-page refreshes")
    p.set_defaults(func=dashboard_handler)
