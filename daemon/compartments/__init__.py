"""Compartments: backends and the runs of built programs inside them."""
