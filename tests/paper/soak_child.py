"""One sandbox session of the shipped threshold strategy in its own process (the soak test SIGKILLs it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kronos_strategies.paper.session import PaperSession  # noqa: E402
from kronos_strategies.strategy import load_object  # noqa: E402
from tests.paper.helpers import ENV, PriceSignal, fast_config  # noqa: E402

if __name__ == "__main__":
    url, journal, until = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    config = fast_config(url, journal, mode="sandbox", warmup=11, until=until)
    params = {"indicator": PriceSignal, "indicator_params": {"scale": 100.0}, "stake": 0.5, "enter": 0.05}
    PaperSession(config, load_object("threshold"), params, env=ENV).run()
