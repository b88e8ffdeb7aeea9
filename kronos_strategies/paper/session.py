"""Wire any backtrader strategy to a live ccxt feed, a paper or exchange broker, and the journal.

The strategy is wrapped so that its ``next`` runs only for bars after the warm-up history (fresh
session) or after the last journaled bar (resumed session), and every processed bar is journaled with
the position, equity and strategy state that followed it. A resumed session starts its history
``warmup`` bars (counted in bars, across holes) before the last processed bar and restores the
strategy's state before re-processing anything. Bars older than ``stale_after_bars`` when they arrive
(an outage being caught up) are processed for state but trade nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import backtrader as bt

from kronos_strategies.errors import ConfigError, LiveTradingRefused
from kronos_strategies.exchange.client import ExchangeClient, make_exchange
from kronos_strategies.exchange.history import bars_back
from kronos_strategies.exchange.timeframes import bar_ms, bt_timeframe, epoch_ms, ms_to_datetime, timeframe_ms
from kronos_strategies.strategy import FractionalCommission, configure_broker

from .broker import PaperBroker, replay_from
from .ccxt_broker import CcxtBroker
from .config import PaperConfig
from .journal import ForecastFan, Journal
from .livefeed import CcxtLiveFeed, FeedGroup
from .universe import LiveUniverseForecaster, UniverseProgress, positions_by_symbol

if TYPE_CHECKING:
    from .refit import LiveRefitter

log = logging.getLogger(__name__)

FAN_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)  # close quantiles journaled per forecast step (the dashboard's fan)


@dataclass
class SessionResult:
    """What a finished (or stopped) session did."""

    bars: int
    journal: Path
    strategy: bt.Strategy | None


def describe(config: PaperConfig, markets: Mapping[str, str] | None = None) -> str:
    """One line saying what the session is about to do (no secrets); ``markets``: a universe's symbols."""
    where = f" via {config.url}" if config.url else ""
    money = {"paper": "simulated fills, nothing is sent", "sandbox": "orders go to the exchange TESTNET",
             "live": "REAL ORDERS WITH REAL MONEY"}[config.mode]  # fmt: skip
    what = ", ".join(markets.values()) if markets else config.symbol
    return (f"{config.mode} trading {what} {config.timeframe} on {config.exchange}{where}: {money}; "
            f"journal {config.journal}")  # fmt: skip


def credentials(config: PaperConfig, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """API key and secret from the environment (sandbox/live only); missing ones name the variable."""
    if config.mode == "paper":
        return None, None
    key, secret = env.get(config.api_key_env), env.get(config.secret_env)
    missing = [name for name, value in ((config.api_key_env, key), (config.secret_env, secret)) if not value]
    if missing:
        raise ConfigError(
            f"{config.mode} mode needs the API key and secret in environment variable(s) {missing}"
        )
    return key, secret


class _Hooks:
    """Session state the wrapped strategy consults: which bars to skip, where to journal, when to stop.

    ``feed`` is the traded feed, or a universe session's :class:`FeedGroup` (the same ``last_now`` and
    ``warm_until``); ``universe`` then opens, restores and journals the ranking strategy's per-symbol parts."""

    def __init__(self, journal: Journal, feed: CcxtLiveFeed | FeedGroup, resume_after: int | None,
                 config: PaperConfig, refitter: LiveRefitter | None = None, step: int = 0,
                 universe: UniverseProgress | None = None) -> None:  # fmt: skip
        self.journal, self.feed, self.resume_after, self.refitter = journal, feed, resume_after, refitter
        self.universe = universe
        self.max_bars, self.until, self.symbol = config.max_bars, config.until_ms(), config.symbol
        self.step = step
        self.stale_after = config.stale_after_bars
        self.stale_ms = None if self.stale_after is None else self.stale_after * step
        self.bars = 0
        self.stale_bars = 0
        self._restored = resume_after is None

    def before(self, strategy: bt.Strategy, ts: int) -> None:
        """Restore the strategy's state once after a restart; refuse orders on a stale bar."""
        if self.universe is not None:
            self.universe.before(strategy, self.resume_after)
        elif not self._restored:
            self._restored = True
            restore_state(strategy, self.journal, self.resume_after)
        age = None if self.feed.last_now is None else self.feed.last_now - (ts + self.step)
        stale = self.stale_ms is not None and age is not None and age > self.stale_ms
        reason = None
        if stale:
            reason = (f"bar {ms_to_datetime(ts)} arrived {age / 1000:.0f}s after its close "
                      f"(more than paper.stale_after_bars={self.stale_after:g}): no orders on it")  # fmt: skip
            self.stale_bars += 1
            self.journal.event("stale", reason)
            log.warning("%s", reason)
        strategy.broker.refuse = reason

    def skip(self, ts: int) -> bool:
        """True for warm-up bars: history before the session started, or bars an earlier run processed."""
        limit = self.resume_after if self.resume_after is not None else self.feed.warm_until
        return limit is not None and ts <= limit

    def done(self, strategy: bt.Strategy, ts: int) -> None:
        """Journal the bar with the position and equity after it; stop at ``max_bars``/``until``."""
        data, broker = strategy.data, strategy.broker
        broker.refuse = None
        if hasattr(broker, "settle"):  # the exchange's fills of this bar's orders, before the row is written
            broker.settle()
        if self.universe is not None:  # per-symbol candles and positions; the bar row holds the portfolio
            rows, state = self.universe.rows(strategy)
            self.journal.record_bar(ts, (None,) * 5, cash=broker.getcash(), value=broker.getvalue(), size=0.0,
                                    price=0.0, state=state, symbols=rows)  # fmt: skip
        else:
            pos = broker.getposition(data)
            ohlcv = (data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
            state = strategy.session_state() if hasattr(strategy, "session_state") else None
            fan = forecast_fan(strategy, self.symbol, ts)
            self.journal.record_bar(ts, ohlcv, cash=broker.getcash(), value=broker.getvalue(), size=pos.size,
                                    price=pos.price, state=state, forecast=fan)  # fmt: skip
        self.bars += 1
        if self.refitter is not None:  # between this bar and the next: the only place a model swaps
            self.refitter.after_bar(data, ts)
        if (self.max_bars is not None and self.bars >= self.max_bars) or (
            self.until is not None and ts >= self.until
        ):
            strategy.env.runstop()


def forecast_fan(strategy: bt.Strategy, symbol: str, ts: int) -> ForecastFan | None:
    """The newest forecast of the strategy's first indicator that has one (``KronosSignal.latest_forecast``)
    as close quantiles and mean per step, stamped with the last bar it saw; None without such an indicator."""
    for indicator in strategy.getindicators():
        forecast = getattr(indicator, "latest_forecast", None)
        if forecast is None:
            continue
        end = ts if forecast.history_end is None else epoch_ms(forecast.history_end)
        bands = forecast.quantile(list(FAN_LEVELS), "close")
        mean = forecast.mean[:, forecast.columns.index("close")]
        quantiles = {q: [float(x) for x in band] for q, band in zip(FAN_LEVELS, bands, strict=True)}
        return ForecastFan(end, symbol, quantiles, [float(x) for x in mean])
    return None


def restore_state(strategy: bt.Strategy, journal: Journal, bar_before: int | None = None) -> None:
    """Give a resumed strategy the state it journaled (or, for an older journal, the side of the position)."""
    if not hasattr(strategy, "restore_session_state"):
        return
    state = journal.strategy_state(at=bar_before)
    if state is None:
        size, value = strategy.position.size, strategy.broker.getvalue()
        if not size:
            return
        exposure = size * strategy.data.close[0] / value if value else 0.0
        state = {"side": 1 if size > 0 else -1, "exposure_target": exposure}
    strategy.restore_session_state(state)
    journal.event("restore", f"strategy state {state}")


def session_strategy(strategy: type[bt.Strategy], hooks: _Hooks) -> type[bt.Strategy]:
    """Subclass ``strategy`` so that ``next`` skips warm-up bars and journals each processed bar (a universe
    strategy steps in ``prenext`` too, before every symbol has a bar, on the bar time all feeds step on)."""

    def step(self: bt.Strategy, body: Any) -> None:
        ts = bar_ms(self if hooks.universe is not None else self.data)
        if hooks.skip(ts):
            return
        hooks.before(self, ts)
        body(self)
        hooks.done(self, ts)

    def next(self: bt.Strategy) -> None:  # noqa: A001
        step(self, strategy.next)

    members: dict[str, Any] = {"next": next, "__module__": strategy.__module__}
    if hooks.universe is not None:
        members["prenext"] = lambda self: step(self, strategy.prenext)
        # live, a symbol without a bar now is in a hole, never delisted: its next candle is not known yet
        members["_close_delisted"] = lambda self, now: None
    return type(strategy.__name__, (strategy,), members)


class PaperSession:
    """One strategy: feed + broker + journal, in paper, sandbox or live mode.

    ``markets`` (asset name -> ccxt symbol) makes it a universe session: a ``UniverseStrategy`` whose
    ``forecaster`` param is a :class:`LiveUniverseForecaster` ranks every symbol of one account.
    """

    def __init__(self, config: PaperConfig, strategy: type[bt.Strategy], params: Mapping[str, Any] | None = None,
                 *, live_confirmed: bool = False, env: Mapping[str, str] | None = None,
                 sizer: tuple[type[bt.Sizer], dict[str, Any]] | None = None,
                 refitter: LiveRefitter | None = None, markets: Mapping[str, str] | None = None) -> None:  # fmt: skip
        if config.mode == "live" and not live_confirmed:
            raise LiveTradingRefused(
                "live trading refused: the YAML says mode: live but --live was not given"
            )
        if live_confirmed and config.mode != "live":
            raise LiveTradingRefused(
                f"--live given but the YAML says mode: {config.mode}; set mode: live to trade live"
            )
        self.config, self.strategy, self.params, self.sizer = config, strategy, dict(params or {}), sizer
        self.refitter = refitter  # walk-forward refits; its predictor feeds the indicator
        self.markets = dict(markets or {})
        if self.markets:
            check_universe_session(config, self.params, refitter)
        self._key, self._secret = credentials(config, os.environ if env is None else env)

    def build_client(self, symbol: str | None = None) -> ExchangeClient:
        """A loaded exchange client for ``symbol`` (default: the configured one) and the timeframe."""
        c = self.config
        exchange = make_exchange(c.exchange, url=c.url, sandbox=c.mode == "sandbox", api_key=self._key,
                                 secret=self._secret, timeout_ms=c.timeout_ms,
                                 recv_window_ms=c.recv_window_ms)  # fmt: skip
        client = ExchangeClient(
            exchange,
            symbol or c.symbol,
            retries=c.retries,
            backoff=c.backoff,
            max_backoff=c.max_backoff,
            clock_skew_ms=c.clock_skew_ms,
        )
        client.load(c.timeframe)
        if c.mode != "paper":  # a wrong key or secret fails here, before any file is created
            client.call("fetch_balance")
        return client

    def _open_journal(self) -> Journal:
        """Open (or resume) the journal, refusing one that belongs to a different market or mode."""
        c = self.config
        journal = Journal(c.journal)
        mine = {"exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe, "mode": c.mode}
        if self.markets:  # a universe session: every symbol, in order (their index is in the order ids)
            mine = {k: v for k, v in mine.items() if k != "symbol"} | {"symbols": list(self.markets.items())}
        stored = journal.meta("market")
        if stored is not None and stored != repr(sorted(mine.items())):
            journal.close()
            raise ConfigError(
                f"journal {c.journal} belongs to another session ({stored}); use a new journal file"
            )
        journal.set_meta("market", repr(sorted(mine.items())))
        journal.set_settings(dataclasses.asdict(c))
        return journal

    def run(self) -> SessionResult:
        """Run until ``until``/``max_bars`` or until interrupted; safe to call again after a crash."""
        c = self.config
        clients = {name: self.build_client(symbol) for name, symbol in self.markets.items()}
        client = next(iter(clients.values())) if clients else self.build_client()
        journal = self._open_journal()
        try:
            last = journal.last_bar()
            step = timeframe_ms(client.exchange, c.timeframe)
            first_intent = journal.first_intent_bar()
            if last is None and first_intent is not None:  # killed inside its first bar: process it again
                last = first_intent - step
            lost_bar = replay_from(client, journal, clients) if c.mode != "paper" else None
            if last is not None and lost_bar is not None and lost_bar <= last:
                journal.event("replay", f"bars from {ms_to_datetime(lost_bar)} are processed again: an intent "
                                        "issued there never reached the exchange")  # fmt: skip
                last = lost_bar - step
            warmup = 500 if c.warmup is None else c.warmup
            if self.refitter is not None:
                warmup = max(warmup, self.refitter.history_bars())
                self.refitter.resume(journal)
            journal.event("start" if last is None else "restart", describe(c, self.markets))
            cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
            feeds, watched = self._add_feeds(cerebro, clients or {c.symbol: client}, last, step, warmup)
            feed = next(iter(feeds.values()))
            if c.mode == "paper":  # the backtest's own broker set-up: same fills, fees and slippage
                cerebro.setbroker(
                    PaperBroker(journal=journal, data=feed, feeds=feeds if self.markets else None)
                )
                configure_broker(cerebro, cash=c.cash, commission=c.commission, slippage=c.slippage)
                cerebro.broker.set_coc(bool(self.markets))  # as the universe backtest: coc=True orders only
            else:  # fractional sizes; the fees are the exchange's own
                cerebro.setbroker(CcxtBroker(client=client, journal=journal, data=feed, poll=c.poll,
                                             clients=clients or None, feeds=feeds if self.markets else None))  # fmt: skip
                cerebro.broker.addcommissioninfo(FractionalCommission(commission=0.0))
            if self.sizer is not None:
                cerebro.addsizer(self.sizer[0], **self.sizer[1])
            universe = None
            if self.markets:
                universe = UniverseProgress(journal, self.params["forecaster"], journal.bar_count())
            hooks = _Hooks(journal, watched, last, c, self.refitter, step, universe)
            cerebro.addstrategy(session_strategy(self.strategy, hooks), **self.params)
            try:
                strategies = cerebro.run()
            finally:
                if self.refitter is not None:
                    self.refitter.close()
            broker = cerebro.broker  # its stop() pulled the last fills: the last bar's row gets them
            if hooks.bars:
                pos = broker.getposition(feed) if not self.markets else bt.Position()
                held = positions_by_symbol(broker, feeds) if self.markets else None
                journal.settle_last_bar(cash=broker.getcash(), value=broker.getvalue(), size=pos.size,
                                        price=pos.price, symbols=held)  # fmt: skip
            journal.event("stop", f"{hooks.bars} bar(s) processed, {hooks.stale_bars} stale")
            return SessionResult(hooks.bars, Path(c.journal), strategies[0] if strategies else None)
        finally:
            journal.close()

    def _add_feeds(self, cerebro: bt.Cerebro, clients: Mapping[str, ExchangeClient], last: int | None, step: int,
                   warmup: int) -> tuple[dict[str, CcxtLiveFeed], CcxtLiveFeed | FeedGroup]:  # fmt: skip
        """One live feed per symbol, each starting ``warmup`` of its own bars (counted across its holes) before
        the last processed bar; a universe's feeds are polled together. Returns them and what the hooks watch."""
        c = self.config
        frame, compression = bt_timeframe(step)
        group = FeedGroup(c.poll) if self.markets else None
        feeds: dict[str, CcxtLiveFeed] = {}
        for name, client in clients.items():
            since = None if last is None else bars_back(client, c.timeframe, last + step, warmup)
            feeds[name] = CcxtLiveFeed(client=client, interval=c.timeframe, warmup=warmup, since=since, poll=c.poll,
                                       until=c.until_ms(), timeframe=frame, compression=compression,
                                       group=group)  # fmt: skip
            if group is not None:
                group.add(feeds[name])
            cerebro.adddata(feeds[name], name=name)
        return feeds, group if group is not None else next(iter(feeds.values()))


def check_universe_session(config: PaperConfig, params: Mapping[str, Any], refitter: Any) -> None:
    """What a universe session supports today, each refusal naming the fix."""
    if config.mode != "paper" and params.get("allow_short"):
        raise ConfigError(
            f"universe.shorting sells short, which a ccxt spot account ({config.mode} mode) cannot: run long_short "
            "in mode: paper (backtrader's broker credits short sales as in the backtest) or use a long-only "
            "strategy such as topk"
        )
    if not isinstance(params.get("forecaster"), LiveUniverseForecaster):
        raise ConfigError(
            "a universe session needs a ranking strategy with forecaster=LiveUniverseForecaster"
        )
    if refitter is not None:
        raise ConfigError(
            "a finetune: block with a universe: block is not supported in paper trading; remove one"
        )
