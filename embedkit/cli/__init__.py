"""The ``embedkit`` command line. Each command group is a module with ``register(subparsers)``."""
