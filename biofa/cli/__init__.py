"""The command line: spec files, overrides, sweeps, launchers."""
