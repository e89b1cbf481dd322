"""Attestation: a run's attestation document, its certificate chain and revocation state,
and the verifier's result against a chosen policy file, reason by reason; revoke."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from attestables.shared.errors import AttestablesError
from attestables.shared.terminal import printable

from ..actions import bindings
from ..dialogs import Field, FormScreen
from ..format import STATE_STYLES, short_id, when
from ..messages import AttestationLoaded, Verified
from ..records import Changes
from .base import Pane, contained

REASONS = ("key_compromise", "privilege_withdrawn", "superseded", "affiliation_changed", "cessation_of_operation",
           "ca_compromise", "unspecified")
# Deeper levels of the document tree start collapsed.
EXPANDED_DEPTH = 2


def describe_certificate(cert: x509.Certificate) -> list[tuple[str, str]]:
    def name(n: x509.Name) -> str:
        cn = n.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(cn[0].value) if cn else n.rfc4514_string() or "(empty)"

    key = cert.public_key()
    key_kind = type(key).__name__.replace("_", "").replace("PublicKey", "").replace("Rust", "")
    return [
        ("subject", name(cert.subject)),
        ("issuer", name(cert.issuer)),
        ("serial", f"{cert.serial_number:x}"),
        ("valid", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} → {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"),
        ("key", key_kind or "?"),
        ("SHA-256", hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()),
    ]


def chain_view(record: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    try:
        leaf = x509.load_pem_x509_certificates(str(record.get("pem", "")).encode())
        chain = x509.load_pem_x509_certificates(str(record.get("chain_pem", "")).encode())
    except ValueError as exc:
        grid.add_row("error", f"cannot read the certificates: {exc}")
        return grid
    for index, cert in enumerate([*leaf[:1], *chain]):
        title = "run certificate" if index == 0 else ("issuing CA" if index == 1 else f"CA {index}")
        grid.add_row(Text(title, style="bold"), "")
        for label, value in describe_certificate(cert):
            grid.add_row(f"  {label}", value)
    if record.get("revoked"):
        state = Text(f"REVOKED {when(record.get('revoked_at'))} ({record.get('revocation_reason')})", style="bold red")
    else:
        state = Text("not revoked", style="green")
    grid.add_row(Text("revocation", style="bold"), state)
    return grid


def result_view(run_id: str | None, policy: str | None, result: dict[str, Any] | None) -> Text:
    if result is None:
        text = Text()
        text.append("no verification yet\n", style="dim")
        text.append(f"policy: {policy}\n" if policy else "choose a policy file (p), then verify (v)\n")
        return text
    status = str(result.get("status"))
    text = Text()
    text.append(status.upper(), style=STATE_STYLES.get(status, "bold"))
    text.append(f"  run {run_id} · policy {policy}\n")
    reasons = result.get("reasons") or []
    if not reasons:
        text.append("  every check passed\n", style="green")
    for reason in reasons:
        text.append(f"  • {reason.get('code')}", style="bold")
        text.append(f": {reason.get('message')}\n")
    crl = result.get("crl")
    if crl:
        text.append(f"revocation: checked against the launcher's CRL ({crl})", style="dim")
    else:
        text.append("revocation: not checked by the verifier (no CRL from the launcher); "
                    "the launcher's record is above", style="dim")
    return text


def verify_with_policy(policy_path: str, pem: str, chain_pem: str, now: float,
                       crl_pem: str | None = None) -> dict[str, Any]:
    """Appraise a certificate as a service would, with the launcher's CRL when given (runs in
    a thread: it reads files)."""
    from attestables.shared.verifier import Verifier, load_policy

    policy = load_policy(policy_path)
    verifier = Verifier(policy, cache_size=0, crls=[crl_pem] if crl_pem else ())
    result = verifier.verify(pem, chain_pem, now=now).to_dict()
    result.pop("claims", None)
    return result


async def verify_run_certificate(source: Any, policy_path: str, pem: str, chain_pem: str,
                                 now: float) -> dict[str, Any]:
    """The launcher's current CRL (``ca.crl``), then :func:`verify_with_policy` in a thread.

    Without the CRL (a daemon that predates ``ca.crl``, or a failed call) the certificate is
    still appraised, and the result says revocation was not checked."""
    try:
        crl = await source.call("ca.crl")
        crl_pem, note = str(crl["crl_pem"]), f"{crl.get('revoked', '?')} listed, next update {when(crl.get('next_update'))}"
    except (AttestablesError, KeyError, TypeError):
        crl_pem, note = None, None
    result = await asyncio.to_thread(verify_with_policy, policy_path, pem, chain_pem, now, crl_pem)
    result["crl"] = note
    return result


def fill_tree(node: TreeNode[Any], value: Any, depth: int = 0) -> None:
    if isinstance(value, dict):
        items = sorted(value.items())
    elif isinstance(value, list):
        items = [(f"[{index}]", item) for index, item in enumerate(value)]
    else:
        return
    for key, item in items:
        if isinstance(item, (dict, list)) and item:
            child = node.add(Text.assemble((printable(str(key)), "bold")), expand=depth + 1 < EXPANDED_DEPTH)
            fill_tree(child, item, depth + 1)
        else:
            # The document carries what clients sent (a run's arguments): shown, not obeyed.
            shown = "null" if item is None else str(item).lower() if isinstance(item, bool) else str(item)
            node.add_leaf(Text.assemble((printable(f"{key}: "), "bold"), (printable(shown), "cyan")))


class AttestationPane(Pane):
    TAB = "attestation"
    MAIN = "#att-document"
    BINDINGS = bindings("attestation")

    def __init__(self, policy: str | None = None) -> None:
        super().__init__()
        self.run_id: str | None = None
        self.certificate: dict[str, Any] | None = None
        self.policy = policy
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="att-heading")
        with Horizontal(id="att-body", classes="frame"):
            yield Tree("attestation document", id="att-document")
            with Vertical(id="att-side", classes="frame"):
                with VerticalScroll(id="att-chain-scroll"):
                    yield Static(id="att-chain")
                with VerticalScroll(id="att-result-scroll"):
                    yield Static(id="att-result")

    def on_mount(self) -> None:
        self.query_one("#att-document").border_title = "attestation document"
        self.query_one("#att-chain-scroll").border_title = "certificate chain"
        self.query_one("#att-result-scroll").border_title = "verifier"
        self._draw()

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted:
            return
        if "certs" in changes.kinds and self.run_id and self.certificate:
            cert = self.records.certs.get(self.run_id)
            if cert and bool(cert.get("revoked")) != bool(self.certificate.get("revoked")):
                self.show_run(self.run_id)  # re-read: it was revoked meanwhile
        if self.run_id is None and changes.kinds & {"certs", "runs"}:
            latest = next(iter(self.records.certs.newest_first()), None)
            if latest is not None:
                self.show_run(latest["run_id"])

    def show_run(self, run_id: str) -> None:
        if self.run_id != run_id:
            self.result = None
        self.run_id = run_id
        self.call("certs.get", {"run_id": run_id},
                  done=lambda record: self.post_message(AttestationLoaded(run_id, record)))
        self._draw()

    @on(AttestationLoaded)
    @contained
    def _loaded(self, message: AttestationLoaded) -> None:
        if message.run_id != self.run_id:
            return
        self.certificate = message.certificate
        self.records.update("certs", {k: v for k, v in message.certificate.items()
                                      if k not in ("pem", "chain_pem", "document")})
        tree = self.query_one("#att-document", Tree)
        tree.clear()
        tree.root.label = Text(f"run {message.run_id}", style="bold")
        fill_tree(tree.root, message.certificate.get("document") or {})
        tree.root.expand()
        self._draw()

    @on(Verified)
    @contained
    def _verified(self, message: Verified) -> None:
        if message.run_id == self.run_id:
            self.result = message.result
            self.policy = message.policy
            self._draw()

    def _draw(self) -> None:
        heading = Text()
        if self.run_id is None:
            heading.append("no run chosen: o chooses one, or a from the Runs tab", style="dim")
        else:
            run = self.records.runs.get(self.run_id) or {}
            heading.append(f"run {self.run_id}", style="bold")
            heading.append(f" · {run.get('state', '?')}")
            if self.certificate:
                revoked = self.certificate.get("revoked")
                heading.append(f" · certificate {short_id(self.certificate.get('serial'), 16)} ")
                heading.append("revoked" if revoked else "valid", style="bold red" if revoked else "green")
        heading.append(f"   policy: {self.policy or 'none chosen (p)'}", style="dim")
        self.query_one("#att-heading", Static).update(heading)
        chain = self.query_one("#att-chain", Static)
        chain.update(chain_view(self.certificate) if self.certificate else Text("no certificate loaded", style="dim"))
        self.query_one("#att-result", Static).update(result_view(self.run_id, self.policy, self.result))

    # -- actions --------------------------------------------------------------------------

    def action_choose_run(self) -> None:
        certs = self.records.certs.newest_first()
        if not certs:
            self.notify("no run has a certificate yet", severity="warning")
            return

        def chosen(values: dict[str, str] | None) -> None:
            if values:
                self.show_run(values["run"])

        options = []
        for cert in certs:
            run = self.records.runs.get(cert["run_id"]) or {}
            build = self.records.builds.get(run.get("build_id") or "") or {}
            options.append((f"{cert['run_id']} · {build.get('source_name', '?')} · {run.get('state', '?')}",
                            cert["run_id"]))
        self.app.push_screen(FormScreen("Show the attestation of", [
            Field("run", "Run", value=self.run_id or certs[0]["run_id"], options=options, required=True)],
            submit="Show"), chosen)

    def action_choose_policy(self) -> None:
        def chosen(values: dict[str, str] | None) -> None:
            if values:
                self.policy = str(Path(values["policy"]).expanduser())
                self.result = None
                self._draw()
                self.action_verify()

        self.app.push_screen(FormScreen("Verify against a policy", [
            Field("policy", "Policy file", value=self.policy or "", placeholder="policy.toml", required=True,
                  help="TOML (docs/policy.example.toml); trusted_roots are read relative to it")],
            submit="Verify"), chosen)

    def action_verify(self) -> None:
        if not self.need(self.certificate, "a run with a certificate"):
            return
        if not self.policy:
            self.action_choose_policy()
            return
        assert self.certificate is not None and self.run_id is not None
        run_id, policy, now = self.run_id, self.policy, self.console.clock()
        pem, chain = str(self.certificate.get("pem", "")), str(self.certificate.get("chain_pem", ""))
        source = self.console.source
        self.run_task(lambda: verify_run_certificate(source, policy, pem, chain, now), name="verify",
                      done=lambda result: self.post_message(Verified(run_id, policy, result)))

    def action_revoke(self) -> None:
        cert = self.certificate
        if not self.need(cert, "a run with a certificate"):
            return
        assert cert is not None
        if cert.get("revoked"):
            self.notify("this certificate is already revoked", severity="warning")
            return

        def chosen(values: dict[str, str] | None) -> None:
            if values:
                self.confirm(f"Revoke certificate {cert['serial']}?",
                             f"Run {cert['run_id']} keeps running, but services refuse it once they see the CRL. "
                             f"Reason: {values['reason']}.",
                             lambda: self.call("certs.revoke", {"serial": cert["serial"], "reason": values["reason"]},
                                               done=self._revoked), yes="Revoke")

        self.app.push_screen(FormScreen("Revoke the run certificate", [
            Field("reason", "Reason", value="key_compromise", options=[(r, r) for r in REASONS], required=True)],
            submit="Revoke…"), chosen)

    def _revoked(self, record: dict[str, Any]) -> None:
        self.notify(f"certificate {record['serial'][:16]} revoked ({record.get('revocation_reason')})",
                    title="certs.revoke", timeout=4)
        self.records.update("certs", record)
        if self.run_id:
            self.show_run(self.run_id)
