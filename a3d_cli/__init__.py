"""The ``a3d`` command line: thin Typer commands over ``a3d_core`` (one file per command)."""
