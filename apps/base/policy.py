"""The service's appraisal policy and the verifier built from it.

The policy is read from ``--policy FILE`` or, without that option, from ``policy.toml`` in
the state directory if an operator pushed one there. It is replaced as a whole: on SIGHUP
(re-read the file) and by ``POST /admin/policy`` (validate, then write the file atomically).
A policy that does not load never replaces a working one. Without a policy the service
refuses every attested request with the reason ``no_policy``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Callable

from cryptography import x509

from attestables.shared.errors import InvalidParams
from attestables.shared.verifier import Policy, PolicyError, Verifier, load_policy, parse_policy

from .errors import BadRequest
from ...shared.files import write_atomic, write_public

log = logging.getLogger(__name__)

ROOT_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.pem$")
MAX_ROOT_FILES = 8
MAX_ROOT_PEM = 64 * 1024
POLICY_MODE = 0o644


class PolicyHolder:
    """``verifier`` is None until a policy is loaded. ``crl`` gives the current CRL (DER),
    installed into every new verifier."""

    def __init__(self, path: Path, *, explicit: bool, crl: Callable[[], bytes | None]) -> None:
        self.path = path
        self.explicit = explicit
        self._crl = crl
        self.verifier: Verifier | None = None
        self.loaded_at: float | None = None
        self.last_error: str | None = None

    @property
    def policy(self) -> Policy | None:
        return self.verifier.policy if self.verifier is not None else None

    def status(self) -> dict[str, object]:
        policy = self.policy
        return {
            "loaded": policy is not None,
            "name": policy.name if policy is not None else None,
            "path": str(self.path),
            "allow": len(policy.allow) if policy is not None else 0,
            "loaded_at": self.loaded_at,
            "last_error": self.last_error,
        }

    def load_at_start(self) -> None:
        """Load the policy file; PolicyError for an explicit file that is missing or bad."""
        if not self.explicit and not self.path.exists():
            log.warning("no policy (%s does not exist): every attested request is refused (no_policy) "
                        "until one is given (--policy, POST /admin/policy)", self.path)
            return
        self._install(load_policy(self.path))

    def reload(self) -> bool:
        """Re-read the file (SIGHUP); a policy that does not load leaves the current one."""
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.last_error = exc.message
            log.error("policy reload failed, keeping the current policy: %s", exc.message)
            return False
        self._install(policy)
        log.info("policy reloaded from %s: %s", self.path, policy.name or "(unnamed)")
        return True

    def replace(self, toml_text: str, roots: dict[str, str]) -> Policy:
        """Validate a policy (and root PEM files to write beside it), then install and write it.

        BadRequest when anything does not check; nothing is written then."""
        directory = self.path.resolve().parent
        certificates = _check_root_files(roots)
        try:
            policy = parse_policy(toml_text, base_dir=directory, source="policy")
        except PolicyError as exc:
            raise BadRequest(exc.message) from None
        anchors: list[x509.Certificate] = []
        for path in policy.root_paths():
            given = certificates.get(path.name) if path.resolve().parent == directory else None
            if given is not None:
                anchors.extend(given)
                continue
            try:
                anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
            except OSError as exc:
                raise BadRequest(f"trusted root {path}: {exc.strerror or exc} (send it in 'roots')") from None
            except ValueError:
                raise BadRequest(f"trusted root {path}: not a PEM certificate") from None
        verifier = self._verifier(policy, anchors)
        for name, pem in roots.items():
            write_public(directory / name, pem.encode("ascii"))
        write_atomic(self.path, toml_text.encode("utf-8"), POLICY_MODE)
        self._activate(verifier)
        log.info("policy replaced through the admin API: %s", policy.name or "(unnamed)")
        return policy

    def install_crl(self, der: bytes) -> None:
        """Give the current verifier a new CRL (InvalidParams if it cannot take it)."""
        if self.verifier is not None:
            self.verifier.update_crl(der)

    def _install(self, policy: Policy) -> None:
        self._activate(self._verifier(policy, None))

    def _verifier(self, policy: Policy, roots: list[x509.Certificate] | None) -> Verifier:
        verifier = Verifier(policy, roots=roots)
        der = self._crl()
        if der is not None:
            try:
                verifier.update_crl(der)
            except InvalidParams as exc:  # the CRL state refuses such CRLs already; belt and braces
                log.warning("the current CRL cannot be used: %s", exc.message)
        return verifier

    def _activate(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.loaded_at = time.time()
        self.last_error = None


def _check_root_files(roots: dict[str, str]) -> dict[str, list[x509.Certificate]]:
    if len(roots) > MAX_ROOT_FILES:
        raise BadRequest(f"at most {MAX_ROOT_FILES} root files")
    parsed: dict[str, list[x509.Certificate]] = {}
    for name, pem in roots.items():
        if not ROOT_FILE_NAME.match(name):
            raise BadRequest(f"root file name {name!r}: a plain file name ending in .pem")
        if len(pem) > MAX_ROOT_PEM or not pem.isascii():
            raise BadRequest(f"root file {name}: not a PEM certificate of at most {MAX_ROOT_PEM} bytes")
        try:
            parsed[name] = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except ValueError:
            raise BadRequest(f"root file {name}: not a PEM certificate") from None
    return parsed
