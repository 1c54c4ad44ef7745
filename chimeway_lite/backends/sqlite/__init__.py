"""The SQLite backend: the default, one file (or ``":memory:"``) and the stdlib driver.

Only this package imports ``sqlite3`` (a test checks it).
"""

from .backend import SqliteBackend

__all__ = ["SqliteBackend"]
