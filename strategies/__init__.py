"""Ready-made Kronos strategies for backtrader, one small file each (``kronos-bt run`` names them).

Installed as ``kronos_strategies.builtin`` (see setup.py), so a project's own ``strategies`` package never clashes."""
