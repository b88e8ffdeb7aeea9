"""kronos_model stays free of backtrader so it can be used (and served) on its own."""

from __future__ import annotations

import subprocess
import sys


def test_model_package_never_imports_backtrader():
    code = (
        "import pkgutil, importlib, sys, kronos_model\n"
        "for m in pkgutil.walk_packages(kronos_model.__path__, 'kronos_model.'):\n"
        "    if not m.name.endswith('train_default'):\n"
        "        importlib.import_module(m.name)\n"
        "print('backtrader' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
