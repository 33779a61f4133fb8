"""One module per ``ctstudio`` subcommand (see :mod:`ctstudio.cli`)."""
