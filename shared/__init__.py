"""What the daemon, the CLI, the console and the services all need.

Nothing here imports Textual, the aiohttp server or the daemon.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("attestables")
except PackageNotFoundError:  # running from a checkout without an install
    __version__ = "0.0.0+unknown"
