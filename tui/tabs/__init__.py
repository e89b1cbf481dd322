"""The console's tabs, one module each; each is a :class:`~attestables.tui.tabs.base.Pane`."""
