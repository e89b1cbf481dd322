"""The command palette's entries: one per console action, from the same table as the keys."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .actions import ACTIONS, TAB_TITLES, ConsoleAction

if TYPE_CHECKING:
    from .app import ConsoleApp


def title(action: ConsoleAction) -> str:
    where = TAB_TITLES[action.tab] if action.tab else "Console"
    name = action.description.rstrip("…")
    return f"{where}: {name}" if not action.id.startswith("tab.") else f"Go to {action.description}"


class ActionCommands(Provider):
    """Every action of every tab; choosing one switches to its tab and runs it."""

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def _help(self, action: ConsoleAction) -> str:
        return f"{action.help}  [{self.console.key_for(action.id)}]"

    async def discover(self) -> Hits:
        for action in ACTIONS:
            yield DiscoveryHit(title(action), partial(self.console.run_console_action, action.id),
                               help=self._help(action))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action in ACTIONS:
            text = title(action)
            score = max(matcher.match(text), matcher.match(action.id) * 0.9)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.console.run_console_action, action.id),
                          help=self._help(action))
