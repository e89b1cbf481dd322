"""C sources: the compartment runtime library and example programs (package data).

The daemon links the runtime into every program it builds: add ``-I RUNTIME_INCLUDE_DIR``,
compile ``RUNTIME_SOURCES`` with the program, and link ``RUNTIME_LIBS``.
"""

from pathlib import Path

_HERE = Path(__file__).parent

RUNTIME_DIR = _HERE / "runtime"
RUNTIME_INCLUDE_DIR = RUNTIME_DIR / "include"
RUNTIME_SOURCES = sorted((RUNTIME_DIR / "src").glob("*.c"))
RUNTIME_LIBS = ("-lcrypto",)
EXAMPLES_DIR = _HERE / "examples"
