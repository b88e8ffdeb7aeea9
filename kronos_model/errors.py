"""The one exception tree of kronos-bt (model, backtests, exchanges, trading); every message names the problem
and how to fix it. It lives on the model side, imports nothing, and ``kronos_strategies.errors`` re-exports it.

KronosError
├── ConfigError (ValueError)          a YAML key, CLI option or parameter is invalid
│   ├── FinetuneConfigError           a fine-tuning setting is out of range
│   └── LiveTradingRefused            live orders need ``mode: live`` in the YAML *and* ``--live``
├── DataError (ValueError)            input bars cannot be used (column, row or timestamp named)
├── SamplingError (ValueError)        temperature / top-k / top-p / sample_count out of range
├── CheckpointError                   missing, not safetensors, or not matching the config
│   └── HubUnavailableError           the hub cannot be reached (offline)
├── TrainingError                     training cannot go on (diverged, nothing to train on)
│   └── DistributedTrainingError      a collective failed or timed out (a peer died or hangs)
├── LookaheadError                    something would use bars at or after the bar it serves
├── JournalUnreadable                 a paper-trading journal is missing or not a SQLite database
└── ExchangeError                     an exchange request failed
    ├── ExchangeAuthError             key or signature refused: never retried
    ├── OrderNotFoundError            the exchange knows no such order
    ├── OrderRejectedError            funds, limits, invalid: not retried
    └── TemporaryExchangeError        network, timeout, unavailable: reconcile and retry
        ├── OrderInFlightError        a timed-out order may still arrive: look again, never re-send
        └── RateLimitedError          429/418: wait ``retry_after`` seconds
"""

from __future__ import annotations


class KronosError(Exception):
    """Root of every error raised by kronos-bt; catch it to catch them all."""


class DataError(KronosError, ValueError):
    """Input data cannot be used as given; the message names the column, row or timestamp."""


class MissingColumnError(DataError):
    """A required OHLCV column is absent: add it or rename the existing one."""


class NonFiniteValueError(DataError):
    """A NaN or infinite value was found: drop or fill those rows first."""


class NonPositivePriceError(DataError):
    """A price is zero or negative, or high < low: the bar is corrupt."""


class UnsortedIndexError(DataError):
    """Timestamps are not in increasing order: sort the data first."""


class DuplicateTimestampError(DataError):
    """The same timestamp appears twice: de-duplicate the data first."""


class InsufficientHistoryError(DataError):
    """Fewer bars than the operation needs: give a longer history or a shorter lookback."""


class TimestampError(DataError):
    """Timestamps are missing, of the wrong length, or their frequency cannot be inferred."""


class SamplingError(KronosError, ValueError):
    """A sampling argument (temperature, top-k, top-p, sample_count) is out of range."""


class ArgumentError(KronosError, ValueError):
    """A public method got an argument outside its domain (a horizon past pred_len, a level outside (0, 1))."""


class UnknownNameError(ArgumentError, KeyError):
    """A column, metric or other name that the object does not have (also a ``KeyError``, as it was)."""

    def __str__(self) -> str:  # the message, not KeyError's quoted repr of it
        return str(self.args[0]) if self.args else ""


class CheckpointError(KronosError):
    """A checkpoint is missing, not safetensors, or does not match the model's config or shapes."""


class HubUnavailableError(CheckpointError, ConnectionError):
    """The Hugging Face hub cannot be reached (offline); pass a local directory instead."""


class LookaheadError(KronosError):
    """A model, cache entry or forecast would use bars at or after the bar it serves."""


class ConfigError(KronosError, ValueError):
    """A YAML backtest, CLI option or parameter is invalid; the message names the key and what is expected."""


class FinetuneConfigError(ConfigError):
    """A fine-tuning setting is out of range; the message names the field and the allowed values."""


class LiveTradingRefused(ConfigError):
    """Live mode needs both ``mode: live`` in the YAML and ``--live`` on the command line."""


class TrainingError(KronosError):
    """Training cannot go on (diverged, a distributed rank failed, no windows to train on)."""


class DistributedTrainingError(TrainingError, RuntimeError):
    """A collective failed or timed out (a peer process died or hangs); every surviving rank raises it."""


class JournalUnreadable(KronosError):
    """A paper-trading journal is missing or not a SQLite database; the message says which."""


class ExchangeError(KronosError):
    """An exchange request failed; see the subclasses for whether it is retried."""


class ExchangeAuthError(ExchangeError):
    """The exchange refused the API key or signature: fix the key environment variables; never retried."""


class OrderNotFoundError(ExchangeError):
    """The exchange knows no order with that id: it never arrived, or the id is wrong; nothing to reconcile."""


class OrderRejectedError(ExchangeError):
    """The exchange refused the order (funds, limits, invalid): not retried; the strategy is told why."""


class TemporaryExchangeError(ExchangeError):
    """Network, timeout, rate-limit or unavailable: may have happened; reconcile, back off and retry."""


class OrderInFlightError(TemporaryExchangeError):
    """A timed-out order is not on the exchange yet but may still arrive: look it up again, do not re-send."""


class RateLimitedError(TemporaryExchangeError):
    """HTTP 429/418: wait ``retry_after`` seconds (from the Retry-After header when sent), then retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
