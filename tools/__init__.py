"""Build tools of the repository (never imported by the `chowa` package): `python -m tools.builtin_data`."""
