"""The docs stay true to the code: every method, error code, topic and setting is documented.

These tests read ``docs/api.md``, ``docs/configuration.md`` and ``docs/architecture.md`` and
compare them with the registries the daemon itself uses (``METHODS``, ``ERRORS``, ``TOPICS``,
``SETTINGS``). Adding a method, an error code, a topic or a setting without documenting it
fails here; so does documenting one that no longer exists.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import attestables.daemon.api.methods  # noqa: F401  (registers every method)
import attestables.shared
from attestables.daemon.api.dispatch import METHODS, MethodSpec, NoParams
from attestables.daemon.config import SETTINGS
from attestables.shared import client, protocol
from attestables.shared.errors import ERRORS

DOCS = Path(__file__).resolve().parent.parent / "docs"
API = DOCS / "api.md"
CONFIGURATION = DOCS / "configuration.md"
ARCHITECTURE = DOCS / "architecture.md"

# Frames the daemon sends that are notifications, not methods.
NOTIFICATIONS = {protocol.HELLO, protocol.EVENT}
# Error codes that only the Python client raises (never on the wire).
CLIENT_ONLY_CODES = {client.CannotConnect.code, client.IncompatibleServer.code}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def documented(name: str, text: str) -> bool:
    """``name`` appears in a heading or as a code item (`` `name` ``)."""
    return f"`{name}`" in text or any(name in heading for heading in headings(text))


def undocumented_methods(text: str) -> list[str]:
    return sorted(name for name in METHODS if not documented(name, text))


def method_sections(text: str) -> set[str]:
    """Methods (and notifications) that have a section of their own: ``### `a.b` ``."""
    return set(re.findall(r"^###\s+`([a-z_]+\.[a-z_]+)`\s*$", text, flags=re.MULTILINE))


def table_rows(text: str) -> list[list[str]]:
    """Every Markdown table row, as its cells without surrounding white space."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def json_blocks(text: str) -> list[str]:
    return re.findall(r"^```json\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def api() -> str:
    return read(API)


# -- methods ----------------------------------------------------------------------------------


def test_every_registered_method_is_documented(api: str) -> None:
    assert METHODS, "no method registered: the import of attestables.daemon.api.methods failed"
    assert undocumented_methods(api) == []


def test_every_method_has_a_section_of_its_own(api: str) -> None:
    assert sorted(set(METHODS) - method_sections(api)) == []


def test_no_section_documents_a_method_that_does_not_exist(api: str) -> None:
    assert sorted(method_sections(api) - set(METHODS) - NOTIFICATIONS) == []


def test_a_method_added_without_docs_is_caught(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a newly registered method is reported until it is documented."""

    async def handler(ctx: object, params: object) -> None:
        return None

    monkeypatch.setitem(METHODS, "widgets.frobnicate", MethodSpec("widgets.frobnicate", NoParams, handler, ""))
    assert undocumented_methods(api) == ["widgets.frobnicate"]
    assert "widgets.frobnicate" not in method_sections(api)


# -- errors -----------------------------------------------------------------------------------


def test_every_error_code_is_documented(api: str) -> None:
    assert sorted(code for code in ERRORS if not documented(code, api)) == []


def test_error_table_gives_each_code_its_json_rpc_number(api: str) -> None:
    documented_numbers = {
        row[0].strip("`"): int(row[1]) for row in table_rows(api)
        if len(row) > 1 and row[0].startswith("`") and re.fullmatch(r"-32\d{3}", row[1])
    }
    expected = {code: cls.rpc_code for code, cls in ERRORS.items()}
    assert {code: documented_numbers.get(code) for code in expected} == expected


def test_client_only_error_codes_are_documented(api: str) -> None:
    assert sorted(code for code in CLIENT_ONLY_CODES if not documented(code, api)) == []


# -- topics, states ---------------------------------------------------------------------------


def test_every_event_topic_and_the_gap_are_documented(api: str) -> None:
    topic_rows = {row[0].strip("`") for row in table_rows(api) if row and row[0].startswith("`")}
    assert sorted((protocol.TOPICS | {protocol.EVENTS_GAP}) - topic_rows) == []


def test_every_build_and_run_state_is_in_a_state_table(api: str) -> None:
    first_cells = {row[0].strip("`") for row in table_rows(api) if row}
    missing = [state for state in (*protocol.BUILD_STATES, *protocol.RUN_STATES) if state not in first_cells]
    assert missing == []


# -- examples ---------------------------------------------------------------------------------


def test_every_json_example_parses(api: str) -> None:
    blocks = json_blocks(api)
    assert len(blocks) > 20
    for block in blocks:
        json.loads(block)


def test_json_examples_name_only_real_methods_topics_and_codes(api: str) -> None:
    methods, topics, codes = set(), set(), set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if value.get("jsonrpc") == "2.0" and isinstance(value.get("method"), str):
                methods.add(value["method"])
                params = value.get("params")
                if value["method"] == protocol.EVENT and isinstance(params, dict):
                    topics.add(params.get("topic"))
            error = value.get("error")
            if isinstance(error, dict) and isinstance(error.get("data"), dict):
                codes.add(error["data"].get("code"))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for block in json_blocks(api):
        walk(json.loads(block))
    assert sorted(methods - set(METHODS) - NOTIFICATIONS) == []
    assert sorted(topics - protocol.TOPICS - {protocol.EVENTS_GAP}) == []
    assert sorted(codes - set(ERRORS)) == []
    # The examples exercise a good part of the API, not one call.
    assert len(methods & set(METHODS)) >= len(METHODS) // 2


# -- configuration ----------------------------------------------------------------------------


def test_every_setting_is_documented_in_configuration_md() -> None:
    text = read(CONFIGURATION)
    assert sorted(name for name in SETTINGS if f"`{name}`" not in text) == []


def test_configuration_md_lists_no_setting_that_does_not_exist() -> None:
    rows = re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*`ATTESTABLES_", read(CONFIGURATION), flags=re.MULTILINE)
    assert rows, "the settings table of configuration.md was not found"
    assert sorted(set(rows) - set(SETTINGS)) == []


# -- architecture -----------------------------------------------------------------------------


def _subpackages(package: object) -> list[str]:
    root = Path(package.__path__[0])  # type: ignore[attr-defined]
    return sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())


def test_architecture_md_names_every_subpackage_of_the_daemon_and_shared() -> None:
    import attestables.daemon

    text = read(ARCHITECTURE)
    missing = [f"daemon/{name}/" for name in _subpackages(attestables.daemon) if f"{name}/" not in text]
    missing += [f"shared/{name}/" for name in _subpackages(attestables.shared) if f"{name}/" not in text]
    assert missing == []


FORBIDDEN_IN_SHARED = ("attestables.daemon", "attestables.tui", "attestables.apps", "attestables.cli",
                       "textual", "aiohttp.web")


def _imports(path: Path, package: str) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_shared_imports_neither_the_daemon_nor_a_face() -> None:
    """architecture.md promises it: the CLI, the console and the services depend on shared/."""
    root = Path(attestables.shared.__path__[0])
    offending = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        package = ".".join(["attestables.shared", *relative.parts[:-1]])  # the module's package
        for name in _imports(path, package):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_SHARED):
                offending.append(f"{path.relative_to(root.parent)}: {name}")
    assert offending == []
