"""Sources: the stored C sources; view one highlighted; upload, new version, build, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable

from ..actions import bindings
from ..dialogs import Field, FormScreen
from ..format import short_digest, short_id, size, when
from ..messages import SourceLoaded
from ..records import Changes
from ..widgets.keyed_table import KeyedTable
from ..widgets.source_view import SourceView
from .base import Pane, contained, row_key

COLUMNS = [("id", "SOURCE", 18), ("name", "NAME", 26), ("versions", "VERSIONS", 8), ("size", "SIZE", 10),
           ("sha256", "SHA-256", 14), ("updated", "UPDATED", 19)]
MAX_UPLOAD_BYTES = 1024 * 1024


def read_source_file(path: str) -> str:
    """The text of a source file to upload (an error message names what is wrong)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(2, f"{file} is not a file")
    if file.stat().st_size > MAX_UPLOAD_BYTES:
        raise OSError(27, f"{file} is larger than {MAX_UPLOAD_BYTES // 1024} KiB")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OSError(22, f"{file} is not UTF-8 text") from None


class SourcesPane(Pane):
    TAB = "sources"
    MAIN = "#sources-table"
    BINDINGS = bindings("sources")

    def __init__(self) -> None:
        super().__init__()
        self.source_shown: tuple[str, int | None] | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="sources-table")
        yield SourceView(id="source-view")

    def on_mount(self) -> None:
        self.query_one("#sources-table").border_title = "Sources"
        self.refresh_view(Changes(kinds={"sources"}))

    def refresh_view(self, changes: Changes) -> None:
        if "sources" not in changes.kinds or not self.is_mounted:
            return
        table = self.query_one("#sources-table", KeyedTable)
        rows = sorted(self.records.sources.values(), key=lambda s: (str(s.get("name")), s["source_id"]))
        table.sync([(s["source_id"], (short_id(s["source_id"], 18), s.get("name"), str(s.get("versions")),
                                       size(s.get("size")), short_digest(s.get("sha256")), when(s.get("updated_at"))))
                    for s in rows])
        table.border_subtitle = f"{len(rows)} sources"

    @on(DataTable.RowHighlighted, "#sources-table")
    @contained
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = row_key(event)
        if key is None or (self.source_shown and self.source_shown[0] == key and self.source_shown[1] is None):
            return
        self.show_source(key)

    def show_source(self, source_id: str, version: int | None = None, line: int | None = None) -> None:
        """Load and show one version (the latest by default), at ``line`` if given."""
        self.source_shown = (source_id, version)
        params: dict[str, Any] = {"source_id": source_id}
        if version is not None:
            params["version"] = version
        self.call("sources.get", params, done=lambda record: self.post_message(SourceLoaded(record, line)))
        if line is not None:
            self.query_one("#sources-table", KeyedTable).select_key(source_id)

    @on(SourceLoaded)
    @contained
    def _loaded(self, message: SourceLoaded) -> None:
        if self.source_shown and self.source_shown[0] == message.record.get("source_id"):
            self.query_one(SourceView).show(message.record, message.line)

    def refresh_list(self) -> None:
        self.call("sources.list", done=self._listed)

    def _listed(self, result: dict[str, Any]) -> None:
        self.records.sources = {s["source_id"]: s for s in result["sources"]}
        self.refresh_view(Changes(kinds={"sources"}))
        self.console.refresh_tab("overview", {"sources"})

    def _upload(self, path: str, name: str) -> None:
        def task() -> str:
            return read_source_file(path)

        def uploaded(record: dict[str, Any]) -> None:
            self.notify(f"{record['name']} version {record['version']} ({size(record['size'])})",
                        title="uploaded", timeout=4)
            self.refresh_list()

        def read(content: str) -> None:
            self.call("sources.upload", {"name": name, "content": content}, done=uploaded)

        self.run_task(task, name="read file", thread=True, done=read)

    def action_upload(self) -> None:
        def submitted(values: dict[str, str] | None) -> None:
            if values:
                self._upload(values["path"], values["name"] or Path(values["path"]).name)

        self.app.push_screen(FormScreen("Upload a C source", [
            Field("path", "File", placeholder="path/to/program.c", required=True),
            Field("name", "Name", placeholder="the file's name", help="ends in .c (a program) or .h (a header)"),
        ], submit="Upload"), submitted)

    def action_new_version(self) -> None:
        source_id = self.selected(self.query_one("#sources-table"))
        if not self.need(source_id, "a source"):
            return
        name = str(self.records.sources[source_id]["name"])

        def submitted(values: dict[str, str] | None) -> None:
            if values:
                self._upload(values["path"], name)

        self.app.push_screen(FormScreen(f"New version of {name}", [
            Field("path", "File", placeholder=f"path/to/{name}", required=True),
        ], submit="Upload"), submitted)

    def action_build(self) -> None:
        source_id = self.selected(self.query_one("#sources-table"))
        if self.need(source_id, "a source"):
            self.console.start_build(source_id)

    def action_delete(self) -> None:
        source_id = self.selected(self.query_one("#sources-table"))
        if not self.need(source_id, "a source"):
            return
        record = self.records.sources[source_id]

        def delete() -> None:
            self.query_one(SourceView).clear()
            self.source_shown = None
            self.call("sources.delete", {"source_id": source_id}, success=f"deleted {record['name']}",
                      done=lambda _: self.refresh_list())

        self.confirm(f"Delete {record['name']} ({record['versions']} versions)?",
                     "Its builds and runs are kept; content no other version or artefact uses is erased.",
                     delete, yes="Delete")
