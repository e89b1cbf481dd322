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
            await sources.delete(first["source_id"], active=None)
            assert not blobs.exists(digest)
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


async def test_blobs_no_row_names_are_collected_and_named_ones_kept(tmp_path: Path):
    db = await Database.open(tmp_path / "attestables.db")
    blobs = BlobStore(tmp_path / "blobs")
    sources = Sources(db, blobs, max_bytes=1 << 20, max_sources=100)
    try:
        kept = await sources.upload("kept.c", "int kept;\n")
        stray = await blobs.put(b"written, then the daemon was killed before its row\n")
        artefact = await blobs.put(b"\x7fELF an artefact a build row names")
        await db.execute("""INSERT INTO builds (build_id, source_id, source_name, version, source_sha256, toolchain,
                                                flags, state, created_at, artefact_sha256)
                            VALUES ('b_1', ?, 'kept.c', 1, ?, '{}', '[]', 'succeeded', 'now', ?)""",
                         (kept["source_id"], kept["sha256"], artefact))
        assert await sources.collect_unnamed_blobs() == 1
        assert not blobs.exists(stray)
        assert blobs.exists(kept["sha256"]) and blobs.exists(artefact)
        assert await sources.collect_unnamed_blobs() == 0
    finally:
        await db.close()
