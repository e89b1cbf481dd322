"""One module per command or command group; each defines ``register(subparsers)``.

``attestables.cli.main`` discovers every module here; see ``attestables.cli.registry``.
"""
