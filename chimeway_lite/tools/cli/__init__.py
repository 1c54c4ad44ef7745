"""The command line ``chimeway-lite`` (see :mod:`.app`)."""

from .app import cli, main

__all__ = ["cli", "main"]
