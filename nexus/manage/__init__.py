"""Management (layer 4): the command line, and later the ManagementPort and diagnostics."""
