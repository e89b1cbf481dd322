"""The case-study digital services: store, transport and messaging."""
