"""Widgets the console's tabs are built from."""
