"""CPU thread settings applied before torch starts its OpenMP runtime.

On a machine busy with other work, OpenMP threads that spin while waiting for a core make torch 10-20x slower
(measured by ``benchmarks/bench_windows.py --threads``); passive waiting removes that cliff. This takes effect
only when torch is first imported after ``kronos_model``; an explicit ``OMP_WAIT_POLICY`` is always kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
