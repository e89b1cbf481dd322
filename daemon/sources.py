"""C sources: validated uploads, immutable versions, content-addressed storage."""

from __future__ import annotations

import re
import secrets
import sqlite3
from typing import Any

from attestables.shared.errors import Conflict, InvalidParams, LimitExceeded, NotFound

from .store.blobs import BlobStore
from .store.db import Database
from .timeutil import now_iso

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or name in {".", ".."} or name.startswith("."):
        raise InvalidParams(
            f"invalid source name {name!r}: use 1-128 of A-Z a-z 0-9 . _ -, not starting with '.'",
            field="name",
        )
    if not (name.endswith(".c") or name.endswith(".h")) or len(name) < 3:
        raise InvalidParams(f"invalid source name {name!r}: it must end in .c or .h", field="name")
    return name


def validate_content(content: str, max_bytes: int) -> bytes:
    try:
        data = content.encode("utf-8")  # lone surrogates (invalid UTF-8 on the wire) fail here
    except UnicodeEncodeError:
        raise InvalidParams("content is not valid UTF-8", field="content") from None
    if len(data) > max_bytes:
        raise LimitExceeded(f"source is {len(data)} bytes; the limit is {max_bytes}", limit=max_bytes)
    if b"\0" in data:
        raise InvalidParams("content contains a NUL byte", field="content")
    return data


# Does any row still name this blob (a source version, a build's artefact)?
_REFERENCED = """SELECT 1 FROM source_versions WHERE sha256 = ?
                 UNION ALL SELECT 1 FROM builds WHERE artefact_sha256 = ? LIMIT 1"""


class Sources:
    def __init__(self, db: Database, blobs: BlobStore, max_bytes: int, max_sources: int) -> None:
        self.db = db
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.max_sources = max_sources

    async def upload(self, name: str, content: str) -> dict[str, Any]:
        validate_name(name)
        data = validate_content(content, self.max_bytes)
        now = now_iso()
        max_sources = self.max_sources
        # The blob is hashed, written and fsynced first; then, in one transaction on the
        # database's thread, it is checked to still be there and named by its row. Deletes
        # collect blobs on that same thread (``delete``), one function at a time, so a
        # collection cannot fall between the check and the row: if a delete collected an
        # identical, unnamed blob meanwhile, it is written again before the row names it.
        digest = await self.blobs.put(data)

        def insert(conn: sqlite3.Connection) -> tuple[str, int]:
            self.blobs.ensure(data, digest)
            row = conn.execute("SELECT source_id FROM sources WHERE name = ?", (name,)).fetchone()
            if row is None:
                (count,) = conn.execute("SELECT count(*) FROM sources").fetchone()
                if count >= max_sources:
                    raise LimitExceeded(f"{count} sources stored; the limit is {max_sources}")
                source_id = "s_" + secrets.token_hex(8)
                conn.execute("INSERT INTO sources VALUES (?, ?, ?, ?)", (source_id, name, now, now))
                conn.execute("INSERT INTO source_versions VALUES (?, 1, ?, ?, ?)", (source_id, digest, len(data), now))
                return source_id, 1
            source_id = row[0]
            # The version number comes from the rows inside the same transaction as the
            # insert (SQLite's write lock, BEGIN IMMEDIATE, serialises uploads): never
            # len(db)+1 outside it.
            (latest,) = conn.execute("SELECT max(version) FROM source_versions WHERE source_id = ?",
                                     (source_id,)).fetchone()
            conn.execute("INSERT INTO source_versions VALUES (?, ?, ?, ?, ?)",
                         (source_id, latest + 1, digest, len(data), now))
            conn.execute("UPDATE sources SET updated_at = ? WHERE source_id = ?", (now, source_id))
            return source_id, latest + 1

        source_id, version = await self.db.run(insert)
        return {"source_id": source_id, "name": name, "version": version, "sha256": digest, "size": len(data)}

    async def list(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            """SELECT s.source_id, s.name, s.created_at, s.updated_at, v.version, v.sha256, v.size,
                      (SELECT count(*) FROM source_versions WHERE source_id = s.source_id) AS versions
               FROM sources s JOIN source_versions v ON v.source_id = s.source_id
               WHERE v.version = (SELECT max(version) FROM source_versions WHERE source_id = s.source_id)
               ORDER BY s.created_at, s.source_id""")
        return [
            {"source_id": r["source_id"], "name": r["name"], "latest_version": r["version"],
             "versions": r["versions"], "sha256": r["sha256"], "size": r["size"],
             "created_at": r["created_at"], "updated_at": r["updated_at"]}
            for r in rows
        ]

    async def version_row(self, source_id: str, version: int | None) -> dict[str, Any]:
        """The named version (latest by default) with its metadata, without content."""
        if version is None:
            row = await self.db.fetchone(
                """SELECT s.name, v.* FROM sources s JOIN source_versions v USING (source_id)
                   WHERE s.source_id = ? ORDER BY v.version DESC LIMIT 1""", (source_id,))
        else:
            row = await self.db.fetchone(
                """SELECT s.name, v.* FROM sources s JOIN source_versions v USING (source_id)
                   WHERE s.source_id = ? AND v.version = ?""", (source_id, version))
        if row is None:
            what = f"source {source_id}" + (f" version {version}" if version is not None else "")
            raise NotFound(f"no {what}", source_id=source_id)
        return {"source_id": source_id, "name": row["name"], "version": row["version"],
                "sha256": row["sha256"], "size": row["size"], "created_at": row["created_at"]}

    async def get(self, source_id: str, version: int | None) -> dict[str, Any]:
        meta = await self.version_row(source_id, version)
        content = self.blobs.read_verified(meta["sha256"]).decode("utf-8")
        return {**meta, "content": content}

    async def headers(self) -> list[dict[str, Any]]:
        """Latest version of every ``.h`` source: the headers a build may include."""
        rows = await self.db.fetchall(
            """SELECT s.name, v.sha256 FROM sources s JOIN source_versions v USING (source_id)
               WHERE s.name LIKE '%.h'
                 AND v.version = (SELECT max(version) FROM source_versions WHERE source_id = s.source_id)""")
        return [{"name": r["name"], "sha256": r["sha256"]} for r in rows]

    async def delete(self, source_id: str, active: str | None) -> None:
        """Remove a source and its versions; blobs no longer named anywhere are erased.

        ``active`` names what still uses it (a running build or run), which refuses the delete.
        """
        if active:
            raise Conflict(f"source {source_id} has {active}; wait for it or stop it first", source_id=source_id)

        def remove(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT sha256 FROM source_versions WHERE source_id = ?", (source_id,)).fetchall()
            if not rows and conn.execute("SELECT 1 FROM sources WHERE source_id = ?", (source_id,)).fetchone() is None:
                raise NotFound(f"no source {source_id}", source_id=source_id)
            conn.execute("DELETE FROM sources WHERE source_id = ?", (source_id,))
            return [row[0] for row in rows]

        def collect(conn: sqlite3.Connection) -> None:
            # Once the delete has committed (a kill in between leaves blobs no row names,
            # collected at the next start), on the database's thread: no upload's naming
            # transaction runs between a blob's check and its erasure.
            for digest in digests:
                if conn.execute(_REFERENCED, (digest, digest)).fetchone() is None:
                    self.blobs.delete(digest)

        digests = await self.db.run(remove)
        await self.db.run(collect)

    async def collect_unnamed_blobs(self) -> int:
        """Erase the blobs no row names; returns how many. Called at start, before serving:
        a daemon killed between writing a blob and committing the row that names it (an
        upload, a build's artefact), or between a delete's commit and its erase, leaves one
        behind, never read but never collected otherwise."""

        def collect(conn: sqlite3.Connection) -> int:
            named = {row[0] for row in conn.execute(
                """SELECT sha256 FROM source_versions
                   UNION SELECT artefact_sha256 FROM builds WHERE artefact_sha256 IS NOT NULL""")}
            unnamed = self.blobs.all_digests() - named
            for digest in unnamed:
                self.blobs.delete(digest)
            return len(unnamed)

        return await self.db.run(collect)
