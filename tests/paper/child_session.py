"""Run one sandbox session in its own process (the kill-and-restart test SIGKILLs it mid-run)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kronos_strategies.paper.session import PaperSession  # noqa: E402
from tests.paper.helpers import ENV, Churn, fast_config  # noqa: E402

if __name__ == "__main__":
    url, journal, until = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    config = fast_config(url, journal, until=until)
    PaperSession(config, Churn, env=ENV).run()
