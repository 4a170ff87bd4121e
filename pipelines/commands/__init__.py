"""The ``avscene`` command line: one module per sub-command (parsing, printing, exit codes)."""
