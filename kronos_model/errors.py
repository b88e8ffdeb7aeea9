"""Exceptions raised by kronos_model; every message names the problem and how to fix it."""

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


class CheckpointError(KronosError):
    """A checkpoint is missing, not safetensors, or does not match the model's config or shapes."""


class HubUnavailableError(CheckpointError, ConnectionError):
    """The Hugging Face hub cannot be reached (offline); pass a local directory instead."""


class LookaheadError(KronosError):
    """A model, cache entry or forecast would use bars at or after the bar it serves."""
