"""A loopback HTTP server speaking the Binance spot REST subset ccxt's ``binance`` class uses, with faults.

It signs nothing and trusts nothing: private endpoints check ``X-MBX-APIKEY`` and the HMAC-SHA256
``signature`` exactly as Binance does, orders go through :class:`MatchingEngine`, and a seeded
:class:`FaultPlan` adds latency, timeouts, 5xx, 429 with Retry-After, responses dropped after the order
was booked, and disconnects, so a client's retry logic can be tested against the real ccxt code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from kronos_strategies.errors import ConfigError

from .matching import EmulatorReject, EmuOrder, EmuTrade, MarketRules, MatchingEngine, _s, share_account

log = logging.getLogger(__name__)

_PUBLIC = {"/api/v3/ping", "/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/ticker/24hr",
           "/api/v3/ticker/price", "/emulator/status"}  # fmt: skip
_PRIVATE = {("GET", "/api/v3/account"), ("POST", "/api/v3/order"), ("GET", "/api/v3/order"),
            ("DELETE", "/api/v3/order"), ("GET", "/api/v3/openOrders"), ("GET", "/api/v3/myTrades")}  # fmt: skip
_MUTATING = {("POST", "/api/v3/order"), ("DELETE", "/api/v3/order")}


@dataclass(frozen=True)
class FaultPlan:
    """Per-request fault probabilities (drawn from one seeded RNG) and their parameters."""

    seed: int = 0
    latency: float = 0.0  # seconds; each request waits uniform(0, latency)
    timeout: float = 0.0  # answer only after timeout_delay (the request is processed first)
    timeout_delay: float = 2.0
    error: float = 0.0  # 500/502/503; an order request may or may not have been booked
    rate_limit: float = 0.0  # 429 with Retry-After, nothing processed
    retry_after: float = 1.0
    drop: float = 0.0  # request processed, connection closed without an answer
    disconnect: float = 0.0  # connection closed before anything is processed
    late: float = 0.0  # processed only after late_delay (the client has timed out by then), then answered
    late_delay: float = 1.0

    def draw(self, rng: random.Random) -> str | None:
        """Pick at most one fault for a request."""
        u = rng.random()
        for name in ("disconnect", "rate_limit", "error", "timeout", "drop", "late"):
            p = getattr(self, name)
            if u < p:
                return name
            u -= p
        return None


class _Drop(Exception):
    """Close the connection without answering."""


class ExchangeEmulator:
    """Serve one :class:`MatchingEngine` per market on 127.0.0.1; ``start()`` runs it in a daemon thread.

    Several engines (one per symbol, each with its own candles, holes allowed) trade from one account
    (:func:`share_account`); give them one :class:`ReplayClock`. ``engine`` is the first market's.
    """

    def __init__(self, engine: MatchingEngine | Sequence[MatchingEngine], *, api_key: str, secret: str,
                 faults: FaultPlan | None = None, host: str = "127.0.0.1", port: int = 0,
                 interval: str = "1m") -> None:  # fmt: skip
        engines = [engine] if isinstance(engine, MatchingEngine) else list(engine)
        self.markets = {e.rules.symbol_id: e for e in engines}
        if len(self.markets) != len(engines):
            raise ConfigError(
                "each emulated market needs its own symbol; two CSVs were given the same --symbol"
            )
        share_account(engines)
        self.engine, self.faults, self.interval = engines[0], faults or FaultPlan(), interval
        self._key, self._secret = api_key, secret.encode()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()
        self.fault_counts: dict[str, int] = {}
        self.requests = 0
        self.server = ThreadingHTTPServer((host, port), _make_handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``) to point ccxt at."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ExchangeEmulator:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kronos-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()

    def set_faults(self, faults: FaultPlan) -> None:
        """Swap the fault plan (reseeding its RNG)."""
        with self._rng_lock:
            self.faults, self._rng = faults, random.Random(faults.seed)

    # --- request pipeline ----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, body: str, headers: dict[str, str]) -> tuple[int, dict, str]:
        """Answer one request: faults, authentication, routing; raises _Drop to hang up."""
        parts = urlsplit(raw_path)
        path, query = parts.path, parts.query
        known = path in _PUBLIC or (method, path) in _PRIVATE
        fault, delay, book_anyway = None, 0.0, False
        with self._rng_lock:
            self.requests += 1
            if known and not path.startswith("/emulator"):
                delay = self._rng.uniform(0, self.faults.latency) if self.faults.latency else 0.0
                fault = self.faults.draw(self._rng)
                book_anyway = self._rng.random() < 0.5
                if fault:
                    self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        if delay:
            time.sleep(delay)
        if fault == "disconnect":
            raise _Drop
        if fault == "late":  # stuck in the gateway: executed after the client gave up (if within recvWindow)
            time.sleep(self.faults.late_delay)
        if fault == "rate_limit":
            retry = {"Retry-After": _s(self.faults.retry_after)}
            return (
                429,
                retry,
                _err(-1003, "Too many requests; current limit is exceeded. Please use WebSocket."),
            )
        if fault == "error" and not ((method, path) in _MUTATING and book_anyway):
            with self._rng_lock:
                return _error_page(self._rng)
        status, extra, payload = self._dispatch(method, path, query, body, headers, known)
        if fault == "error":  # booked, then the gateway failed: the client cannot know
            return 500, {}, _err(-1001, "Internal error; unable to process your request. Please try again.")
        if fault == "timeout":
            time.sleep(self.faults.timeout_delay)
        if fault == "drop":
            raise _Drop
        return status, extra, payload

    def _dispatch(self, method: str, path: str, query: str, body: str, headers: dict[str, str],
                  known: bool) -> tuple[int, dict, str]:  # fmt: skip
        """Authenticate when needed and run the endpoint, turning EmulatorReject into a Binance error."""
        if not known:
            return 404, {}, _err(-1000, f"Unknown endpoint {method} {path}.")
        try:
            if (method, path) in _PRIVATE:
                signed = body if method == "POST" else query
                self._authenticate(headers, signed)
                params = dict(parse_qsl(query)) | dict(parse_qsl(body))
                _check_recv_window(params)
            else:
                params = dict(parse_qsl(query))
            return 200, {}, json.dumps(self._route(method, path, params))
        except EmulatorReject as exc:
            return exc.status, {}, _err(exc.code, exc.msg)

    def _authenticate(self, headers: dict[str, str], signed: str) -> None:
        """Check the API key header and the HMAC-SHA256 of the parameters that precede ``signature``."""
        key = headers.get("x-mbx-apikey")
        if not key or not hmac.compare_digest(key, self._key):
            raise EmulatorReject(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, sep, signature = signed.rpartition("&signature=")
        if not sep:
            raise EmulatorReject(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise EmulatorReject(400, -1022, "Signature for this request is not valid.")

    def _market(self, p: dict[str, str]) -> MatchingEngine:
        """The engine of the request's ``symbol`` (the first market when none is given); -1121 when unknown."""
        eng = self.markets.get(p.get("symbol", self.engine.rules.symbol_id))
        if eng is None:
            raise EmulatorReject(400, -1121, "Invalid symbol.")
        return eng

    def _route(self, method: str, path: str, p: dict[str, str]) -> object:
        """The endpoint bodies."""
        eng = self.engine
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": eng.now()}
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info()
        if path == "/emulator/status":
            now = eng.now()
            first = min(int(e.ts[0]) for e in self.markets.values())
            last = max(int(e.ts[-1]) for e in self.markets.values())
            return {"now": now, "first": first, "last": last, "interval": self.interval,
                    "finished": now >= last + eng.timeframe_ms, "requests": self.requests,
                    "faults": self.fault_counts, "symbols": list(self.markets)}  # fmt: skip
        if path == "/api/v3/account":
            for market in self.markets.values():  # resting orders of every market match up to now
                market.now()
            return {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": False,
                    "canDeposit": False, "accountType": "SPOT", "updateTime": eng.now(),
                    "balances": eng.balance_rows(), "permissions": ["SPOT"]}  # fmt: skip
        if path == "/api/v3/openOrders" and "symbol" not in p:
            return [self._order_json(o, e) for e in self.markets.values() for o in e.open_orders()]
        eng = self._market(p)
        if path == "/api/v3/klines":
            if p.get("interval") != self.interval:
                raise EmulatorReject(400, -1120, "Invalid interval.")
            limit = min(int(p.get("limit", 500)), 1000)
            return eng.klines(_int(p, "startTime"), _int(p, "endTime"), limit)
        if path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price"):
            return self._ticker(eng, path.endswith("price"))
        if path == "/api/v3/openOrders":
            return [self._order_json(o, eng) for o in eng.open_orders()]
        if path == "/api/v3/myTrades":
            limit = min(int(p.get("limit", 500)), 1000)
            trades = eng.my_trades(order_id=_int(p, "orderId"), from_id=_int(p, "fromId"),
                                   start=_int(p, "startTime"), end=_int(p, "endTime"), limit=limit)  # fmt: skip
            return [self._trade_json(t, eng) for t in trades]
        return self._order_endpoint(eng, method, p)

    def _order_endpoint(self, eng: MatchingEngine, method: str, p: dict[str, str]) -> dict:
        """POST, GET and DELETE /api/v3/order."""
        if method == "POST":
            side, otype = p.get("side", ""), p.get("type", "")
            if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
                raise EmulatorReject(
                    400, -1116, "Invalid orderType." if side in ("BUY", "SELL") else "Invalid side."
                )
            if "quantity" not in p:
                raise EmulatorReject(400, -1102, "Mandatory parameter 'quantity' was not sent.")
            price = float(p["price"]) if "price" in p else None
            cid = p.get("newClientOrderId") or f"emu{len(eng.orders) + 1}"
            order = eng.place(side, otype, float(p["quantity"]), price, cid)
            out = self._order_json(order, eng) | {"transactTime": order.time}
            out["fills"] = [
                {"price": _s(t.price), "qty": _s(t.qty), "commission": _s(t.commission),
                 "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                for t in eng.trades if t.order_id == order.order_id
            ]  # fmt: skip
            return out
        order_id, cid = _int(p, "orderId"), p.get("origClientOrderId")
        if order_id is None and not cid:
            raise EmulatorReject(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        if method == "DELETE":
            return self._order_json(eng.cancel(order_id, cid), eng) | {"origClientOrderId": cid or ""}
        return self._order_json(eng.find(order_id, cid), eng)

    def _exchange_info(self) -> dict:
        """Every emulated market: TRADING spot symbols with PRICE_FILTER, LOT_SIZE and NOTIONAL filters."""
        return {"timezone": "UTC", "serverTime": self.engine.now(), "rateLimits": [], "exchangeFilters": [],
                "symbols": [self._symbol_info(e.rules) for e in self.markets.values()]}  # fmt: skip

    @staticmethod
    def _symbol_info(r: MarketRules) -> dict:
        """One market's exchangeInfo entry."""
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": _s(r.tick_size), "maxPrice": "10000000", "tickSize": _s(r.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": _s(r.min_qty), "maxQty": "100000", "stepSize": _s(r.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100000", "stepSize": "0"},
            {"filterType": "NOTIONAL", "minNotional": _s(r.min_notional), "applyMinToMarket": True,
             "maxNotional": "90000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ]  # fmt: skip
        symbol = {
            "symbol": r.symbol_id, "status": "TRADING", "baseAsset": r.base, "baseAssetPrecision": 8,
            "quoteAsset": r.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": False,
            "ocoAllowed": False, "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False,
            "cancelReplaceAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": filters, "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
        }  # fmt: skip
        return symbol

    def _ticker(self, eng: MatchingEngine, price_only: bool) -> dict:
        """24h ticker (from the last closed candle) or the bare last price."""
        last = eng.price()
        if price_only:
            return {"symbol": eng.rules.symbol_id, "price": _s(last)}
        bar = eng.last_closed()
        o, h, lw, _, v = bar if bar is not None else (last, last, last, last, 0.0)
        now = eng.now()
        return {"symbol": eng.rules.symbol_id, "priceChange": _s(last - o), "priceChangePercent": _s((last / o - 1) * 100),
                "weightedAvgPrice": _s(last), "lastPrice": _s(last), "bidPrice": _s(last), "askPrice": _s(last),
                "openPrice": _s(o), "highPrice": _s(max(h, last)), "lowPrice": _s(min(lw, last)), "volume": _s(v),
                "quoteVolume": _s(v * last), "openTime": now - 86_400_000, "closeTime": now, "count": 0}  # fmt: skip

    def _order_json(self, o: EmuOrder, eng: MatchingEngine) -> dict:
        """Binance's order object."""
        return {"symbol": eng.rules.symbol_id, "orderId": o.order_id, "orderListId": -1,
                "clientOrderId": o.client_id, "price": _s(o.price), "origQty": _s(o.qty),
                "executedQty": _s(o.executed), "cummulativeQuoteQty": _s(o.quote), "status": o.status,
                "timeInForce": "GTC" if o.type == "LIMIT" else "GTC", "type": o.type, "side": o.side,
                "stopPrice": "0", "time": o.time, "updateTime": o.update_time, "isWorking": True,
                "workingTime": o.time, "origQuoteOrderQty": "0", "selfTradePreventionMode": "NONE"}  # fmt: skip

    def _trade_json(self, t: EmuTrade, eng: MatchingEngine) -> dict:
        """Binance's myTrades entry."""
        return {"symbol": eng.rules.symbol_id, "id": t.trade_id, "orderId": t.order_id, "orderListId": -1,
                "price": _s(t.price), "qty": _s(t.qty), "quoteQty": _s(t.price * t.qty),
                "commission": _s(t.commission), "commissionAsset": t.commission_asset, "time": t.time,
                "isBuyer": t.is_buyer, "isMaker": t.is_maker, "isBestMatch": True}  # fmt: skip


def _check_recv_window(p: dict[str, str]) -> None:
    """Binance refuses a signed request that arrives more than ``recvWindow`` ms (default 5000) after its timestamp."""
    stamp, window = _int(p, "timestamp"), _int(p, "recvWindow")
    if window is not None and window > 60_000:
        raise EmulatorReject(400, -1131, "recvWindow must be less than 60000")
    if stamp is not None and time.time() * 1000 - stamp > (5_000 if window is None else window):
        raise EmulatorReject(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def _int(p: dict[str, str], key: str) -> int | None:
    """An optional integer query parameter."""
    try:
        return int(p[key]) if key in p else None
    except ValueError:
        raise EmulatorReject(400, -1100, f"Illegal characters found in parameter '{key}'.") from None


def _err(code: int, msg: str) -> str:
    """Binance's JSON error body."""
    return json.dumps({"code": code, "msg": msg})


def _error_page(rng: random.Random) -> tuple[int, dict, str]:
    """An HTML 5xx page as a load balancer in front of the exchange would send."""
    status = rng.choice((500, 502, 503))
    return (
        status,
        {"Content-Type": "text/html"},
        f"<html><body><h1>{status} Service Unavailable</h1></body></html>",
    )


def _make_handler(emulator: ExchangeEmulator) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one emulator."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "kronos-emulator"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, extra, payload = emulator.handle(self.command, self.path, body, headers)
            except _Drop:
                self.close_connection = True
                return
            data = payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", "application/json;charset=UTF-8"))
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout fault)
                pass

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("emulator %s %s", self.command, urlsplit(self.path).path)

    return Handler
