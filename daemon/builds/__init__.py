"""Building uploaded sources: toolchains, the flag allow-list, diagnostics and ELF facts.

Pure functions and frozen records only (no asyncio, no daemon state); the build queue
that runs them lives elsewhere in the daemon.
"""
