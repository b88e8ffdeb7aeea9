"""Local, read-only web dashboard: browse backtest/sweep/walk-forward runs and watch paper sessions live."""

from __future__ import annotations

from .app import DashboardSettings, create_app

__all__ = ["DashboardSettings", "create_app"]
