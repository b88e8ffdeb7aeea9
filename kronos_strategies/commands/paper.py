"""``kronos-bt paper`` (run a YAML strategy on an exchange), ``paper report`` and ``kronos-bt emulator``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from kronos_strategies.errors import ConfigError

from .options import add_deprecated_alias

WARMUP_MARGIN = 8  # bars of history beyond indicator.lookback in the default paper.warmup


def _strategy(
    cfg: Any, timeframe_ms: int, predictor: Any = None, markets: dict[str, str] | None = None
) -> tuple[type, dict[str, Any]]:
    """The YAML's strategy class and params; Kronos strategies get the indicator and model as in a backtest,
    ranking strategies (a universe: block, ``markets``) their live forecaster."""
    import backtrader as bt

    from kronos_strategies.config import check_names
    from kronos_strategies.runner import indicator_params, load_model
    from kronos_strategies.strategy import KronosStrategy, load_object

    strategy = load_object(cfg.strategy.name, kind="strategy")
    if not (isinstance(strategy, type) and issubclass(strategy, bt.Strategy)):
        raise ConfigError(f"strategy.name {cfg.strategy.name!r} is not a backtrader Strategy class")
    from kronos_strategies.universe.strategy import UniverseStrategy

    if markets or issubclass(strategy, UniverseStrategy):  # a ranking strategy over the universe's symbols
        from kronos_strategies.paper.universe import universe_strategy

        return universe_strategy(cfg, markets, predictor)
    check_names(cfg.strategy.params, strategy.params._getkeys(), "strategy.params")
    params = dict(cfg.strategy.params)
    if issubclass(strategy, KronosStrategy):
        indicator = load_object(cfg.indicator.type, kind="indicator")
        check_names(cfg.indicator.params, indicator.params._getkeys(), "indicator.params")
        model = predictor if predictor is not None else load_model(cfg.model)
        ind_params = indicator_params(cfg, model) | {"progress": False}
        params |= {"indicator": indicator, "indicator_params": ind_params}
        if "periods_per_year" in strategy.params._getkeys():
            params.setdefault("periods_per_year", 365.25 * 86_400_000 / timeframe_ms)
    return strategy, params


def _refuse_live_from_command_line(overrides: list[str]) -> None:
    """Real-money trading must be written in the YAML file itself; ``--set paper.mode=...`` cannot switch it on."""
    from kronos_strategies.paper.session import LiveTradingRefused

    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "paper.mode" and value.strip().strip("'\"").lower() == "live":
            raise LiveTradingRefused(
                "--set paper.mode=live is refused: write 'mode: live' in the YAML file's paper: section "
                "and pass --live"
            )


def paper_handler(args: argparse.Namespace) -> int:
    """Run the YAML's strategy in paper (default), sandbox or live mode."""
    import ccxt

    from kronos_strategies.config import load_config
    from kronos_strategies.exchange.timeframes import timeframe_ms
    from kronos_strategies.paper.config import paper_config
    from kronos_strategies.paper.session import PaperSession, describe

    _refuse_live_from_command_line(list(args.set or []))
    cfg = load_config(args.config, list(args.set or []))
    markets = None
    if cfg.universe is not None:  # several symbols in one session
        from kronos_strategies.paper.universe import universe_markets

        section = cfg.paper
        if section is None:
            raise ConfigError(
                f"{cfg.source or 'the config'} has no 'paper:' section (exchange, timeframe, mode, ...)"
            )
        markets = universe_markets(cfg, section.exchange, section.timeframe)
    first = next(iter(markets.values())) if markets else None
    pc = paper_config(cfg, journal=args.journal, url=args.url, max_bars=args.max_bars, symbol=first)
    if pc.warmup is None:  # the first forecast's history plus a margin (a restart must never fall short)
        pc.warmup = cfg.indicator.lookback + WARMUP_MARGIN
    step = timeframe_ms(ccxt.Exchange, pc.timeframe)
    refitter = None
    if cfg.finetune is not None:  # walk-forward refits in the background, swapped in between bars
        from kronos_strategies.paper.refit import live_refitter
        from kronos_strategies.runner import load_model

        refitter = live_refitter(cfg, load_model(cfg.model), step)
    strategy, params = _strategy(cfg, step, None if refitter is None else refitter.predictor, markets)
    if refitter is not None and "indicator_params" not in params:
        raise ConfigError(
            f"the 'finetune:' block refits Kronos; strategy.name {cfg.strategy.name!r} has no model"
        )
    session = PaperSession(pc, strategy, params, live_confirmed=args.live, refitter=refitter, markets=markets)
    print(f"kronos-bt: {describe(pc, markets)}", flush=True)
    print(f"kronos-bt: {pc.broker_line()}", flush=True)
    result = session.run()
    print(f"kronos-bt: {result.bars} bar(s) processed; journal {result.journal}")
    return 0


def report_handler(args: argparse.Namespace) -> int:
    """Write the tear-sheet of a journal."""
    from kronos_strategies.paper.report import write_report

    if args.out:
        output = str(Path(args.out) / "tearsheet.html")
    else:  # --output FILE.html: the spelling before 0.2 (deprecated)
        output = getattr(args, "output", None) or str(Path(args.journal).with_suffix(".html"))
    print(f"kronos-bt: wrote {write_report(args.journal, output, title=args.title)}")
    return 0


def inspect_handler(args: argparse.Namespace) -> int:
    """List a journal's intents -> exchange orders -> fills, calling out duplicates and mismatches."""
    from kronos_strategies.paper.report import inspect_journal

    lines, problems = inspect_journal(args.journal)
    print("\n".join(lines))
    return 0


def emulator_handler(args: argparse.Namespace) -> int:
    """Serve CSVs as a Binance-like exchange on 127.0.0.1 (one market per ``--csv``/``--symbol`` pair, one
    account and one replay clock) until interrupted (or ``--exit-after``)."""
    import ccxt

    from kronos_strategies.emulator import (
        ExchangeEmulator,
        FaultPlan,
        MarketRules,
        MatchingEngine,
        ReplayClock,
        load_candles,
    )
    from kronos_strategies.exchange.timeframes import timeframe_ms

    symbols = args.symbol or ["BTC/USDT"]
    if len(symbols) != len(args.csv):
        raise ConfigError(
            f"give one --symbol per --csv, in the same order (got {len(args.csv)} --csv, {len(symbols)} --symbol)"
        )
    step = timeframe_ms(ccxt.Exchange, args.timeframe)
    markets = []
    for symbol, csv in zip(symbols, args.csv, strict=True):
        base, _, quote = symbol.partition("/")
        if not base or not quote:
            raise ConfigError(f"--symbol must look like BTC/USDT, got {symbol!r}")
        markets.append((MarketRules(base=base, quote=quote, fee_rate=args.fee), load_candles(csv)))
    key, secret = os.environ.get(args.key_env), os.environ.get(args.secret_env)
    if not key or not secret:
        raise ConfigError(
            f"set the emulator's API key and secret in environment variables {args.key_env} and {args.secret_env}"
        )
    candles = markets[0][1]  # the replay clock starts --history candles into the first CSV; one clock for all
    start = min(max(args.history, 0), len(candles) - 1)
    clock = ReplayClock(int(candles.index[start]), step / 1000.0 / args.bar_seconds)
    engines = [MatchingEngine(frame, step, clock, rules, {rules.quote: args.cash, rules.base: 0.0},
                              liquidity=args.liquidity) for rules, frame in markets]  # fmt: skip
    faults = FaultPlan(seed=args.seed, latency=args.latency, timeout=args.timeouts, error=args.errors,
                       rate_limit=args.rate_limits, drop=args.drops, disconnect=args.disconnects, late=args.late,
                       late_delay=args.late_delay)  # fmt: skip
    emu = ExchangeEmulator(engines, api_key=key, secret=secret, faults=faults, host="127.0.0.1", port=args.port,
                           interval=args.timeframe)  # fmt: skip
    emu.start()
    print(f"kronos-bt: emulator serving {', '.join(symbols)} {args.timeframe} from {', '.join(args.csv)} on {emu.url} "
          f"({len(candles) - start} candles to replay, one every {args.bar_seconds:g}s); point paper.url at it", flush=True)  # fmt: skip
    try:
        deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        emu.stop()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``paper`` (with ``paper report``) and ``emulator``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    paper = subparsers.add_parser("paper", help="paper/sandbox/live trading of a YAML strategy via ccxt",
                                  formatter_class=fmt, description=__doc__)  # fmt: skip
    paper.add_argument("config", help="backtest YAML with a paper: section, or 'report' / 'inspect' JOURNAL")
    paper.add_argument("journal_arg", nargs="?", help=argparse.SUPPRESS)
    paper.add_argument(
        "--live", action="store_true", help="allow real orders (the YAML must also say mode: live)"
    )
    paper.add_argument("--journal", help="journal file (default: paper.journal)")
    paper.add_argument("--url", help="API base URL override, e.g. the emulator's")
    paper.add_argument("--max-bars", type=int, help="stop after this many processed bars")
    paper.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a YAML key (repeatable)")
    paper.add_argument(
        "--out", help="report: directory for tearsheet.html (default: <journal>.html next to the journal)"
    )
    add_deprecated_alias(paper, "--output", "--out DIR", dest="output")  # it named the HTML file
    paper.add_argument("--title", help="report: tear-sheet title")
    paper.set_defaults(func=_paper_dispatch)

    emu = subparsers.add_parser("emulator", help="a Binance-like exchange on 127.0.0.1 replaying a CSV",
                                formatter_class=fmt)  # fmt: skip
    emu.add_argument("--csv", required=True, action="append",
                     help="OHLCV CSV with a timestamp column (UTC); repeat with --symbol for several markets")  # fmt: skip
    emu.add_argument("--symbol", action="append",
                     help="market of the matching --csv (default BTC/USDT); one account trades them all")  # fmt: skip
    emu.add_argument("--timeframe", default="1m", help="the CSV's bar interval (ccxt notation)")
    emu.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    emu.add_argument("--history", type=int, default=500, help="candles already closed when the replay starts")
    emu.add_argument("--bar-seconds", type=float, default=1.0, help="wall seconds per replayed candle")
    emu.add_argument("--cash", type=float, default=10_000.0, help="starting quote balance")
    emu.add_argument("--fee", type=float, default=0.001, help="fee rate, charged in the quote currency")
    emu.add_argument("--liquidity", type=float, help="share of a candle's volume a resting order may fill")
    emu.add_argument("--key-env", default="KRONOS_BT_API_KEY", help="env var holding the accepted API key")
    emu.add_argument("--secret-env", default="KRONOS_BT_API_SECRET", help="env var holding the secret")
    for flag, text in (("latency", "max added seconds per request"), ("timeouts", "answer late (prob.)"),
                       ("errors", "5xx (prob.)"), ("rate-limits", "429 + Retry-After (prob.)"),
                       ("drops", "order booked, answer lost (prob.)"), ("disconnects", "hang up (prob.)"),
                       ("late", "executed after the client timed out, within recvWindow (prob.)")):  # fmt: skip
        emu.add_argument(f"--{flag}", type=float, default=0.0, help=text)
    emu.add_argument(
        "--late-delay", type=float, default=1.0, help="seconds a --late request waits before it runs"
    )
    emu.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    emu.add_argument("--exit-after", type=float, help=argparse.SUPPRESS)
    emu.set_defaults(func=emulator_handler)


def _paper_dispatch(args: argparse.Namespace) -> int:
    """``paper report JOURNAL``, ``paper inspect JOURNAL`` or ``paper CONFIG``."""
    if args.config == "inspect":
        if not args.journal_arg:
            raise ConfigError("usage: kronos-bt paper inspect JOURNAL")
        args.journal = args.journal_arg
        return inspect_handler(args)
    if args.config == "report":
        if not args.journal_arg:
            raise ConfigError("usage: kronos-bt paper report JOURNAL [--out DIR]")
        args.journal = args.journal_arg
        return report_handler(args)
    if args.journal_arg:
        raise ConfigError(
            f"unexpected argument {args.journal_arg!r}; usage: kronos-bt paper CONFIG.yaml [--live]"
        )
    return paper_handler(args)
