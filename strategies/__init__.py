"""Ready-made Kronos strategies for backtrader, one small file each (``kronos-bt run`` names them)."""
