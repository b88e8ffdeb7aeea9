"""Sub-commands of the ``kronos-bt`` CLI, one module per job."""
