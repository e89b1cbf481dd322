"""The attestation document: what the launcher started, where, and under which isolation.

The document is a set of claims named after EAT (RFC 9711), serialised as canonical JSON
(RFC 8785) so that its bytes, and hence any digest of them, are stable. It travels inside
the run certificate (see :mod:`.extension`); ``docs/attestation.md`` describes every claim.

Building: construct :class:`AttestationDocument` (every claim is a required keyword; a
missing one is a ``TypeError``) or use :meth:`AttestationDocument.create`, which derives
``cnf``, ``iat``, ``exp``, ``eat_nonce`` and ``eat_profile``. :meth:`to_canonical_json`
validates every claim (types, formats, and honesty rules such as "no c18n backend off
CHERI hardware") before serialising.

Parsing: :func:`parse_document` accepts only the canonical form, re-canonicalising once.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Sequence

import msgspec
import rfc8785
from msgspec import Meta

from ..errors import InvalidParams
from .keys import b64url, jwk_thumbprint_x25519

EAT_PROFILE = "urn:attestables:eat-profile:1"
MAX_DOCUMENT_SIZE = 64 * 1024
DEFAULT_LIFETIME = 24 * 3600

# Vocabularies. Values are strings in the schema so that a newer launcher can add one;
# a verifier treats a value it does not know as the weakest.
MEASUREMENT_TYPES = ("elf-sha256", "source-sha256")
BACKENDS = ("c18n", "bwrap", "none")
# Higher is stronger.
NETWORK_ISOLATION = {"host": 0, "none": 1}
FILESYSTEM_ISOLATION = {"host": 0, "readonly": 1, "none": 2}
RLIMIT_NAMES = (
    "cpu_seconds",
    "memory_bytes",
    "open_files",
    "processes",
    "file_size_bytes",
    "wall_seconds",
)
# EAT dbgstat (RFC 9711 §4.2.9), by name.
DBGSTAT_VALUES = (
    "enabled",
    "disabled",
    "disabled-since-boot",
    "disabled-permanently",
    "disabled-fully-and-permanently",
)

Hex256 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
Identifier = Annotated[str, Meta(pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")]
B64Url = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]+$")]
Text = Annotated[str, Meta(min_length=1, max_length=1024)]
OptionalText = Annotated[str, Meta(max_length=1024)]
Count = Annotated[int, Meta(ge=0, le=2**53 - 1)]
Timestamp = Annotated[int, Meta(ge=0, le=2**53 - 1)]
Rfc3339Utc = Annotated[
    str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
]


class _Claims(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every claim set: immutable, strict on decode, keyword-only."""


class Platform(_Claims):
    """The machine the run is on, as the launcher sees it."""

    os: Text
    release: Text
    machine: Text
    cpu_model: OptionalText
    cpu_count: Annotated[int, Meta(ge=1, le=65536)]
    memory_bytes: Count
    cheri: bool


class Measurement(_Claims):
    type: Literal["elf-sha256", "source-sha256"]
    digest: Hex256


class Toolchain(_Claims):
    name: Text
    compiler: Text
    version: OptionalText
    argv: list[Annotated[str, Meta(max_length=4096)]]


class Elf(_Claims):
    machine: Text
    purecap: bool
    interpreter: OptionalText | None


class Isolation(_Claims):
    network: Text
    filesystem: Text
    # Limit name (RLIMIT_NAMES) -> value; an absent name means "not limited".
    rlimits: dict[Text, Count]


class Compartment(_Claims):
    backend: Text
    isolation: Isolation
    # What the compartment itself reported in HELLO (on CHERI: bounds and permissions of
    # the capabilities holding its key material); free-form JSON object.
    evidence: dict[str, Any]


class Submods(_Claims):
    compartment: Compartment


class Confirmation(_Claims):
    """``cnf``: the JWK thumbprint (RFC 7638) of the certificate's subject key."""

    jkt: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{43}$")]


class Run(_Claims):
    run_id: Identifier
    build_id: Identifier
    pid: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    started_at: Rfc3339Utc


class Launcher(_Claims):
    version: Text
    issuing_ca_fingerprint: Hex256


class AttestationDocument(_Claims):
    """Every claim is required; see ``docs/attestation.md``."""

    eat_profile: Literal["urn:attestables:eat-profile:1"]
    eat_nonce: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{11,86}$")]
    iat: Timestamp
    exp: Timestamp
    ueid: B64Url
    hwmodel: Text
    platform: Platform
    swname: Text
    swversion: Text
    measurements: Annotated[list[Measurement], Meta(min_length=1, max_length=64)]
    toolchain: Toolchain
    elf: Elf
    submods: Submods
    cnf: Confirmation
    run: Run
    launcher: Launcher
    dbgstat: Literal[
        "enabled",
        "disabled",
        "disabled-since-boot",
        "disabled-permanently",
        "disabled-fully-and-permanently",
    ]

    EAT_PROFILE: ClassVar[str] = EAT_PROFILE

    @classmethod
    def create(
        cls,
        *,
        public_key: bytes,
        run: Run,
        measurements: Sequence[Measurement],
        toolchain: Toolchain,
        elf: Elf,
        platform: Platform,
        compartment: Compartment,
        swname: str,
        swversion: str,
        launcher: Launcher,
        ueid: str,
        hwmodel: str,
        dbgstat: str,
        iat: int | None = None,
        lifetime: int = DEFAULT_LIFETIME,
        eat_nonce: str | None = None,
    ) -> AttestationDocument:
        """A document for one run, deriving ``cnf`` from the compartment's X25519 key.

        ``iat`` defaults to now, ``exp`` is ``iat + lifetime`` and ``eat_nonce`` is 16
        fresh random bytes unless given. Nothing is validated until serialisation.
        """
        issued = int(time.time()) if iat is None else iat
        return cls(
            eat_profile=EAT_PROFILE,
            eat_nonce=eat_nonce if eat_nonce is not None else b64url(os.urandom(16)),
            iat=issued,
            exp=issued + lifetime,
            ueid=ueid,
            hwmodel=hwmodel,
            platform=platform,
            swname=swname,
            swversion=swversion,
            measurements=list(measurements),
            toolchain=toolchain,
            elf=elf,
            submods=Submods(compartment=compartment),
            cnf=Confirmation(jkt=jwk_thumbprint_x25519(public_key)),
            run=run,
            launcher=launcher,
            dbgstat=dbgstat,  # type: ignore[arg-type]  # validated on serialisation
        )

    # Views -------------------------------------------------------------------------

    @property
    def compartment(self) -> Compartment:
        return self.submods.compartment

    def digests(self, kind: str) -> frozenset[str]:
        """The digests of one measurement type (``elf-sha256`` or ``source-sha256``)."""
        return frozenset(m.digest for m in self.measurements if m.type == kind)

    def claims(self) -> dict[str, Any]:
        """The document as plain JSON-compatible data."""
        return msgspec.to_builtins(self)

    # Serialisation -----------------------------------------------------------------

    def validate(self) -> dict[str, Any]:
        """Check every claim; returns the plain-data form. Raises :class:`DocumentInvalid`."""
        try:
            data = msgspec.to_builtins(self)
            msgspec.convert(data, AttestationDocument)
        except (msgspec.ValidationError, TypeError) as exc:
            raise DocumentInvalid(f"attestation document: {exc}") from None
        _check_consistency(self)
        return data

    def to_canonical_json(self) -> bytes:
        """RFC 8785 canonical JSON of the validated document."""
        data = self.validate()
        try:
            return rfc8785.dumps(data)
        except rfc8785.CanonicalizationError as exc:  # e.g. a float in evidence
            raise DocumentInvalid(f"attestation document: {exc}") from None


class DocumentError(InvalidParams):
    """An attestation document that cannot be used; ``reason`` is the verifier's code."""

    reason: ClassVar[str] = "document_invalid"


class DocumentInvalid(DocumentError):
    """Malformed JSON, a claim missing or of the wrong type, or inconsistent claims."""

    reason = "document_invalid"


class DocumentNotCanonical(DocumentError):
    """Well-formed JSON, but not the RFC 8785 canonical form of itself."""

    reason = "document_not_canonical"


class DocumentMissing(DocumentError):
    """The certificate carries no attestation document."""

    reason = "document_missing"


_json_decoder = msgspec.json.Decoder()


def parse_document(data: bytes) -> AttestationDocument:
    """Parse a document, accepting only its canonical form and a complete, consistent claim set."""
    if len(data) > MAX_DOCUMENT_SIZE:
        raise DocumentInvalid(f"attestation document larger than {MAX_DOCUMENT_SIZE} bytes")
    try:
        raw = _json_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DocumentInvalid(f"attestation document is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DocumentInvalid("attestation document is not a JSON object")
    try:
        canonical = rfc8785.dumps(raw)
    except rfc8785.CanonicalizationError as exc:
        raise DocumentInvalid(f"attestation document cannot be canonicalised: {exc}") from None
    if canonical != data:
        raise DocumentNotCanonical("attestation document is not in RFC 8785 canonical form")
    try:
        document = msgspec.convert(raw, AttestationDocument)
    except msgspec.ValidationError as exc:
        raise DocumentInvalid(f"attestation document: {exc}") from None
    _check_consistency(document)
    return document


def _check_consistency(doc: AttestationDocument) -> None:
    """Rules the schema alone cannot state; above all, never claim CHERI that did not happen."""
    if doc.exp < doc.iat:
        raise DocumentInvalid("attestation document: exp is before iat")
    if not doc.digests("elf-sha256"):
        raise DocumentInvalid("attestation document: no elf-sha256 measurement")
    if not doc.platform.cheri:
        if doc.elf.purecap:
            raise DocumentInvalid("attestation document: a purecap ELF cannot run on a platform without CHERI")
        if doc.compartment.backend == "c18n":
            raise DocumentInvalid("attestation document: backend c18n claimed on a platform without CHERI")
    for name in doc.compartment.isolation.rlimits:
        if name not in RLIMIT_NAMES:
            raise DocumentInvalid(f"attestation document: unknown rlimit {name!r}")
    t = doc.run.started_at  # the schema fixed the layout; check the values are a real time
    try:
        datetime(int(t[0:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16]), int(t[17:19]))
    except ValueError:
        raise DocumentInvalid("attestation document: run.started_at is not a valid time") from None


def rfc3339(moment: datetime | float) -> str:
    """A UTC RFC 3339 timestamp with milliseconds, as ``run.started_at`` wants it."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
