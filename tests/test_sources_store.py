"""Sources on a real SQLite file and blob store: an upload whose blob a concurrent delete
collected before the upload's row named it still ends with its blob stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from attestables.daemon.sources import Sources
from attestables.daemon.store.blobs import BlobStore
from attestables.daemon.store.db import Database


async def test_an_upload_rewrites_a_blob_collected_before_its_row_named_it(tmp_path: Path, monkeypatch):
    db = await Database.open(tmp_path / "attestables.db")
    blobs = BlobStore(tmp_path / "blobs")
    sources = Sources(db, blobs, max_bytes=1 << 20, max_sources=100)
    try:
        first = await sources.upload("a.c", "int main(void) { return 0; }\n")
        real_put = blobs.put

        async def put_then_collected(data: bytes, **kwargs):
            digest = await real_put(data, **kwargs)
            # What a delete of "a.c" does meanwhile: its row goes, the blob nobody names goes.
            async with blobs.lock:
                await db.execute("DELETE FROM sources WHERE source_id = ?", (first["source_id"],))
                blobs.delete(digest)
            monkeypatch.setattr(blobs, "put", real_put)
            return digest

        monkeypatch.setattr(blobs, "put", put_then_collected)
        second = await sources.upload("b.c", "int main(void) { return 0; }\n")
        assert second["sha256"] == first["sha256"] and second["version"] == 1
        got = await sources.get(second["source_id"], None)  # read_verified: the blob is there, intact
        assert got["content"] == "int main(void) { return 0; }\n"
        assert [s["name"] for s in await sources.list()] == ["b.c"]
    finally:
        await db.close()


async def test_concurrent_uploads_of_one_name_make_consecutive_versions(tmp_path: Path):
    db = await Database.open(tmp_path / "attestables.db")
    sources = Sources(db, BlobStore(tmp_path / "blobs"), max_bytes=1 << 20, max_sources=100)
    try:
        results = await asyncio.gather(*(sources.upload("x.c", f"int v = {n};\n") for n in range(12)))
        assert sorted(r["version"] for r in results) == list(range(1, 13))
        assert len({r["source_id"] for r in results}) == 1
    finally:
        await db.close()
