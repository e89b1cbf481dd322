"""Every action of the console, once: its id, default key, footer label and help.

The key bindings (:func:`bindings`) and the command palette
(:class:`attestables.tui.commands.ActionCommands`) are both built from :data:`ACTIONS`,
so nothing can be reachable one way and not the other. Ids are stable: a user remaps a
key by id (``attestables console --bind builds.start=ctrl+b``; Textual's keymap).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

TABS = ("overview", "sources", "builds", "runs", "attestation", "trace", "services")
TAB_TITLES = {
    "overview": "Overview",
    "sources": "Sources",
    "builds": "Builds",
    "runs": "Runs",
    "attestation": "Attestation",
    "trace": "Trace",
    "services": "Services",
}


@dataclass(frozen=True)
class ConsoleAction:
    id: str
    key: str
    action: str
    description: str
    help: str
    tab: str | None = None  # None: the app's own action, available everywhere
    show: bool = True


ACTIONS: tuple[ConsoleAction, ...] = (
    *(ConsoleAction(f"tab.{tab}", str(number), f"show_tab('{tab}')", TAB_TITLES[tab],
                    f"Show the {TAB_TITLES[tab]} tab", show=False)
      for number, tab in enumerate(TABS, 1)),
    ConsoleAction("app.reload", "ctrl+r", "reload", "Reload", "Re-read every record from the daemon"),
    ConsoleAction("app.quit", "ctrl+q", "quit", "Quit", "Leave the console"),
    # Sources
    ConsoleAction("sources.upload", "u", "upload", "Upload", "Upload a C source from a file", "sources"),
    ConsoleAction("sources.new_version", "n", "new_version", "New version",
                  "Upload a new version of the selected source from a file", "sources"),
    ConsoleAction("sources.build", "b", "build", "Build", "Build the selected source", "sources"),
    ConsoleAction("sources.delete", "d", "delete", "Delete", "Delete the selected source (asks first)", "sources"),
    # Builds
    ConsoleAction("builds.start", "b", "start_build", "Build", "Start a build (source, toolchain, flags)", "builds"),
    ConsoleAction("builds.run", "r", "run", "Run", "Run the selected build in a compartment", "builds"),
    ConsoleAction("builds.cancel", "c", "cancel", "Cancel", "Cancel the selected build (asks first)", "builds"),
    ConsoleAction("builds.follow", "f", "follow", "Follow", "Follow the end of the compile log again", "builds"),
    ConsoleAction("builds.diagnostic", "g", "goto_diagnostic", "Go to line",
                  "Show the source line of the selected diagnostic", "builds"),
    # Runs
    ConsoleAction("runs.start", "r", "start_run", "Run", "Start a run from a build (backend, limits, args)", "runs"),
    ConsoleAction("runs.stop", "s", "stop", "Stop", "Stop the selected run (asks first)", "runs"),
    ConsoleAction("runs.attestation", "a", "attestation", "Attestation",
                  "Show the selected run's attestation", "runs"),
    ConsoleAction("runs.trace", "t", "trace", "Trace", "Show the selected run's messages", "runs"),
    ConsoleAction("runs.follow", "f", "follow", "Follow", "Follow the end of the run's output again", "runs"),
    # Attestation
    ConsoleAction("attestation.run", "o", "choose_run", "Run…", "Choose the run whose attestation to show",
                  "attestation"),
    ConsoleAction("attestation.policy", "p", "choose_policy", "Policy…",
                  "Choose the policy file to verify against", "attestation"),
    ConsoleAction("attestation.verify", "v", "verify", "Verify",
                  "Appraise the run's certificate against the policy", "attestation"),
    ConsoleAction("attestation.revoke", "x", "revoke", "Revoke", "Revoke the run's certificate (asks first)",
                  "attestation"),
    # Trace
    ConsoleAction("trace.filter", "slash", "filter", "Filter", "Filter the messages (run, service, op, status)",
                  "trace"),
    ConsoleAction("trace.clear", "c", "clear_filters", "Clear filters", "Show every message again", "trace"),
    ConsoleAction("trace.run", "r", "filter_run", "This run", "Show only the selected message's run", "trace"),
    ConsoleAction("trace.follow", "f", "follow", "Follow", "Follow the newest messages again", "trace"),
    # Services
    ConsoleAction("services.register", "n", "register", "Register",
                  "Register a digital service (URL and TLS pin)", "services"),
    ConsoleAction("services.remove", "d", "remove", "Remove", "Remove the selected service (asks first)",
                  "services"),
)

BY_ID = {a.id: a for a in ACTIONS}


def bindings(tab: str | None) -> list[Binding]:
    """The key bindings of one tab (``None``: the app's), each with its id and tooltip."""
    return [Binding(a.key, a.action, a.description, show=a.show, tooltip=a.help, id=a.id)
            for a in ACTIONS if a.tab == tab]
