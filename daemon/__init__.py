"""The launcher daemon: API, store, builds, compartments, CA and broker."""
