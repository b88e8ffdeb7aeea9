"""ccxt at the boundary: build the client, translate its errors, retry what may have failed, place orders once.

ccxt's exceptions are translated here and nowhere else. Its ``NetworkError`` family and ``OperationFailed``
mean "may have happened": reconcile, back off (honouring Retry-After), retry. Its ``ExchangeError`` family
means "did not happen": never retried, the strategy is told why. An order is re-sent only after a look-up
by its client order id found nothing, because Binance accepts a filled order's id again.

Late execution: every signed request carries ``recvWindow`` (``paper.recv_window_ms``); the exchange refuses
a request that reaches it later than that after its timestamp. A POST whose answer never came (timeout,
dropped connection) may still arrive until then, so the look-up before a re-send waits out that window
(plus a margin for clock skew) instead of re-sending, which could reuse the id of an order still in flight.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import ccxt

from kronos_strategies.errors import (
    ConfigError,
    ExchangeAuthError,
    ExchangeError,
    OrderInFlightError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    TemporaryExchangeError,
)

log = logging.getLogger(__name__)

__all__ = [
    "ExchangeAuthError",
    "ExchangeClient",
    "OrderInFlightError",
    "OrderNotFoundError",
    "RateLimitedError",
    "make_exchange",
    "translate",
]


def _clean(exc: BaseException) -> str:
    """A one-line reason from a ccxt exception, without query strings (they carry signatures)."""
    text = re.sub(r"\?\S*", "?…", str(exc)).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:240]}"


def translate(exc: ccxt.BaseError, what: str, retry_after: float | None = None) -> ExchangeError:
    """Map a ccxt exception onto kronos-bt's retry (Temporary…) and no-retry (Rejected, Auth, …) branches."""
    reason = f"{what}: {_clean(exc)}"
    if isinstance(exc, ccxt.AuthenticationError):
        return ExchangeAuthError(f"{reason} (check the API key/secret environment variables)")
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFoundError(reason)
    if isinstance(exc, ccxt.BadSymbol):
        return ConfigError(reason)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimitedError(reason, retry_after)
    if isinstance(exc, ccxt.OperationFailed):  # NetworkError and friends: the outcome is unknown
        temporary = TemporaryExchangeError(reason)
        # no answer at all (client timeout, connection lost): the request may still reach the exchange later
        temporary.in_flight = isinstance(exc, ccxt.RequestTimeout) or type(exc) is ccxt.NetworkError  # type: ignore[attr-defined]
        return temporary
    return OrderRejectedError(reason)


def make_exchange(exchange_id: str = "binance", *, url: str | None = None, sandbox: bool = False,
                  api_key: str | None = None, secret: str | None = None, timeout_ms: int = 10_000,
                  rate_limit: bool | None = None, recv_window_ms: int = 5_000) -> ccxt.Exchange:  # fmt: skip
    """A ccxt client for spot trading; ``url`` points every API entry at another host (the emulator).

    ``recv_window_ms`` is sent with every signed request (Binance's ``recvWindow``): the longest time after
    which a request that timed out on our side can still be executed by the exchange."""
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown ccxt exchange {exchange_id!r}{hint}")
    logging.getLogger("ccxt").setLevel(max(logging.getLogger("ccxt").getEffectiveLevel(), logging.INFO))
    config: dict[str, Any] = {
        "timeout": int(timeout_ms),
        "enableRateLimit": (url is None) if rate_limit is None else rate_limit,
        "options": {"defaultType": "spot", "maxRetriesOnFailure": 0, "recvWindow": int(recv_window_ms)},
    }
    if exchange_id == "binance":  # one exchangeInfo request, no margin/currency endpoints
        config["options"] |= {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    exchange = getattr(ccxt, exchange_id)(config)
    if sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported as exc:
            raise ConfigError(f"{exchange_id} has no sandbox/testnet in ccxt; use mode: paper") from exc
    if url:
        base = url.rstrip("/")
        for name, value in list(exchange.urls["api"].items()):
            if isinstance(value, str):
                exchange.urls["api"][name] = base + urlsplit(value).path
    return exchange


class ExchangeClient:
    """One symbol on one exchange: retried calls, precision and limit checks, idempotent order placement."""

    def __init__(self, exchange: ccxt.Exchange, symbol: str, *, retries: int = 6, backoff: float = 0.25,
                 max_backoff: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 clock_skew_ms: int = 1_000) -> None:  # fmt: skip
        self.exchange, self.symbol = exchange, symbol
        self.retries, self.backoff, self.max_backoff, self._sleep = retries, backoff, max_backoff, sleep
        self.market: dict[str, Any] = {}
        self.recv_window_ms = int((exchange.options or {}).get("recvWindow") or 10_000)
        self.clock_skew_ms = clock_skew_ms  # allowed difference between our clock and the exchange's
        self.in_flight_until: dict[
            str, float
        ] = {}  # cid -> wall time (s) after which it can no longer arrive

    # --- plumbing ------------------------------------------------------------------------------------
    def once(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One ccxt call, its exception translated."""
        try:
            return getattr(self.exchange, method)(*args, **kwargs)
        except ccxt.BaseError as exc:
            raise translate(exc, method, self._retry_after()) from exc

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A ccxt call that is safe to repeat (reads, look-ups), retried on temporary errors with backoff."""
        for attempt in range(self.retries + 1):
            try:
                return self.once(method, *args, **kwargs)
            except TemporaryExchangeError as exc:
                if attempt == self.retries:
                    raise
                self.wait(exc, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, exc: TemporaryExchangeError, attempt: int) -> None:
        """Sleep before a retry: Retry-After when the exchange sent one, else exponential backoff."""
        delay = min(self.backoff * 2**attempt, self.max_backoff)
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), self.max_backoff)
        log.warning("retrying in %.2fs after %s", delay, exc)
        self._sleep(delay)

    def _retry_after(self) -> float | None:
        """Seconds from the last response's Retry-After header, if it had one."""
        headers = self.exchange.last_response_headers or {}
        value = headers.get("Retry-After") or headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    # --- markets -------------------------------------------------------------------------------------
    def load(self, timeframe: str | None = None) -> dict[str, Any]:
        """Load markets; an unknown symbol or timeframe is a one-line ConfigError naming the closest match."""
        markets = self.call("load_markets")
        if self.symbol not in markets:
            close = difflib.get_close_matches(self.symbol, list(markets), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{self.exchange.id} has no market {self.symbol!r}{hint}")
        self.market = markets[self.symbol]
        frames = self.exchange.timeframes or {}
        if timeframe is not None and frames and timeframe not in frames:
            raise ConfigError(
                f"{self.exchange.id} has no timeframe {timeframe!r}; valid: {', '.join(frames)}"
            )
        return self.market

    def now_ms(self) -> int:
        """Exchange time in epoch milliseconds."""
        return int(self.call("fetch_time"))

    def round_order(
        self, otype: str, amount: float, price: float | None, ref_price: float
    ) -> tuple[float, float | None]:
        """Amount and price rounded to market precision, checked against the market's limits."""
        try:
            amount = float(self.exchange.amount_to_precision(self.symbol, abs(amount)))
            if price is not None:
                price = float(self.exchange.price_to_precision(self.symbol, price))
        except ccxt.BaseError as exc:
            raise OrderRejectedError(f"order rejected before sending: {_clean(exc)}") from exc
        limits = self.market.get("limits", {})
        checks = [("amount", amount, "amount"), ("price", price, "price"),
                  ("cost", amount * (price if price is not None else ref_price), "notional (amount x price)")]  # fmt: skip
        for key, value, label in checks:
            bounds = limits.get(key) or {}
            lo, hi = bounds.get("min"), bounds.get("max")
            if value is None:
                continue
            if value <= 0 or (lo is not None and value < lo) or (hi is not None and value > hi):
                raise OrderRejectedError(
                    f"order rejected before sending: {label} {value:g} outside the {self.symbol} limits "
                    f"[{lo}, {hi}] (after rounding to the market precision)"
                )
        return amount, price

    # --- orders --------------------------------------------------------------------------------------
    def arrival_deadline(self, sent_at: float) -> float:
        """Wall time (s) after which a request sent at ``sent_at`` can no longer be executed (window + skew margin)."""
        return sent_at + (self.recv_window_ms + self.clock_skew_ms) / 1000.0

    def find_order(self, cid: str) -> dict[str, Any] | None:
        """The exchange's order with this client order id, or None when it never arrived."""
        try:
            return self.call("fetch_order", None, self.symbol, params={"origClientOrderId": cid})
        except OrderNotFoundError:
            return None

    def place_order(self, cid: str, side: str, otype: str, amount: float, price: float | None = None, *,
                    maybe_sent: bool = False, on_send: Callable[[float], None] | None = None) -> dict[str, Any]:  # fmt: skip
        """Create an order at most once: before every re-send, look it up by ``cid``.

        ``on_send(wall_time)`` is called before each POST (the journal keeps it so that a restarted
        session knows how long the attempt may still arrive).

        Raises OrderRejectedError (not placed, do not retry), OrderInFlightError (not found yet, but an
        earlier attempt may still arrive: look again later) or TemporaryExchangeError (outcome still
        unknown after all retries; call again later with ``maybe_sent=True``).
        """
        last: TemporaryExchangeError | None = None
        for attempt in range(self.retries + 1):
            if maybe_sent:
                found = self.find_order(cid)
                if found is not None:
                    self.in_flight_until.pop(cid, None)
                    return found
                until = self.in_flight_until.get(cid, 0.0)
                if time.time() < until:
                    raise OrderInFlightError(
                        f"order {cid} not on the exchange yet; an earlier attempt may still arrive for "
                        f"{until - time.time():.1f}s (recvWindow), so it is looked up again instead of re-sent"
                    )
            try:
                params = {"newClientOrderId": cid}
                sent_at = time.time()
                if on_send is not None:
                    on_send(sent_at)
                placed = self.once("create_order", self.symbol, otype, side, amount, price, params=params)
                self.in_flight_until.pop(cid, None)
                return placed
            except TemporaryExchangeError as exc:
                maybe_sent, last = True, exc
                if getattr(exc, "in_flight", False):
                    deadline = self.arrival_deadline(sent_at)
                    self.in_flight_until[cid] = max(self.in_flight_until.get(cid, 0.0), deadline)
                self.wait(exc, attempt)
            except OrderRejectedError as exc:
                if "Duplicate order" not in str(exc):
                    raise
                found = self.find_order(cid)  # an open order already carries this id: it is ours
                if found is None:
                    raise
                return found
        raise TemporaryExchangeError(
            f"order {cid}: outcome unknown after {self.retries + 1} attempts"
        ) from last

    def cancel_order(self, cid: str) -> dict[str, Any] | None:
        """Cancel by client order id; None when the exchange says it is not open any more."""
        try:
            return self.call("cancel_order", None, self.symbol, params={"origClientOrderId": cid})
        except OrderNotFoundError:
            return None

    def trades_since(self, from_id: int = 0) -> list[dict[str, Any]]:
        """All of this account's fills on the symbol with trade id >= ``from_id``, paginated, ascending."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.call("fetch_my_trades", self.symbol, None, 1000, params={"fromId": from_id})
            out.extend(page)
            if len(page) < 1000:
                return out
            from_id = int(page[-1]["id"]) + 1
