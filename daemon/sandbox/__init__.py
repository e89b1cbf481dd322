"""Confinement: command lines for compartments and the compile sandbox, and process control."""
