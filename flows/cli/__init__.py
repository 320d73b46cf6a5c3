"""The `alignloop` command line (Typer): `main` is the console script; one module per command group."""
