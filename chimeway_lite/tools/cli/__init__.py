"""The command line ``chimeway-lite``: the group in :mod:`.app`, the commands by concern."""

from . import check, demo, inspection, sweep, ui, work
from .app import cli, main

__all__ = ["check", "cli", "demo", "inspection", "main", "sweep", "ui", "work"]
