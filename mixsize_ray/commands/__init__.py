"""One module per `mixsize-ray` subcommand, each with ``register(subparsers)``; heavy imports stay inside
the command functions so `--help` and bad-input errors are instant.

May import every other package (the top layer); nothing imports ``commands`` but ``cli``.
"""
