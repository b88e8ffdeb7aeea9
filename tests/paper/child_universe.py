"""Run one sandbox universe session (topk over three symbols) in its own process; the kill test SIGKILLs it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kronos_strategies.config import load_config  # noqa: E402
from tests.paper.helpers import MomentumForecaster  # noqa: E402
from tests.paper.universe_helpers import universe_config, universe_session  # noqa: E402

if __name__ == "__main__":
    url, journal, until = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    cfg = load_config(universe_config(journal.parent, url))
    universe_session(cfg, MomentumForecaster(), journal, mode="sandbox", until=until).run()
