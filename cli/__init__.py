"""The command-line face of attestables: one console script with subcommands."""
